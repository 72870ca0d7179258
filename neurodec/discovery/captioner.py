"""A CLIP-prefix captioner (ClipCap, Mokady et al. 2021): image embedding -> GPT-2 prefix -> caption.

A mapping network turns one image embedding (e.g. a CLIP image embedding) into
``prefix_length`` GPT-2 input embeddings; GPT-2 continues that prefix into a
caption. Training uses teacher forcing (cross-entropy on the caption tokens
only) on (embedding, caption) pairs, with GPT-2 frozen (only the mapping
learns) or fine-tuned with it. BrainSCUBA captions voxels with such a
captioner, fed with each voxel's projected embedding
(:func:`neurodec.discovery.brainscuba_captions`).

GPT-2 and its tokenizer load with transformers' ``from_pretrained``, from a
hub id ("gpt2") or a local folder; a fitted captioner saves to, and loads
from, one folder (safetensors weights, JSON config, tokenizer files).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._docs import fill_doc
from .._logging import get_logger, progress

if TYPE_CHECKING:
    import torch

__all__ = ["PrefixCaptioner"]

logger = get_logger(__name__)

_MAPPINGS = ("mlp", "transformer")


def _import_transformers() -> Any:
    # transformers imports torchvision lazily; where torchvision's compiled ops cannot
    # load, neurodec's shim makes that import work (see neurodec._torchvision).
    from .._torchvision import enable_torchvision

    enable_torchvision()
    import transformers

    return transformers


def _load_pretrained(kind: str, source: str | os.PathLike, loader: Any) -> Any:
    """``loader.from_pretrained(source)`` with an error that says what to do offline."""
    try:
        return loader.from_pretrained(str(source))
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
        raise OSError(
            f"PrefixCaptioner cannot load the {kind} from {str(source)!r}: it is neither a local folder with "
            f"the {kind}'s files nor a hub id in the local Hugging Face cache"
            + (" (HF_HUB_OFFLINE is set, so the hub is not asked)" if offline else "")
            + ". Download it once where the hub is reachable, or pass a local folder or a loaded object."
        ) from exc


def _mapping_network(kind: str, embed_dim: int, hidden: int, prefix_length: int, n_layers: int) -> "torch.nn.Module":
    """ClipCap's two mapping networks, from an embedding (d,) to a prefix (prefix_length, hidden)."""
    import torch
    from torch import nn

    if kind == "mlp":
        mid = (hidden * prefix_length) // 2

        class _MLPMapping(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = nn.Sequential(nn.Linear(embed_dim, mid), nn.Tanh(), nn.Linear(mid, hidden * prefix_length))

            def forward(self, x: "torch.Tensor") -> "torch.Tensor":
                return self.net(x).view(x.shape[0], prefix_length, hidden)

        return _MLPMapping()

    class _TransformerMapping(nn.Module):
        # ClipCap's transformer mapper: the embedding becomes prefix_length tokens, which
        # attend together with as many learned constants; the constants' outputs are the prefix.
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(embed_dim, hidden * prefix_length)
            self.const = nn.Parameter(torch.randn(prefix_length, hidden) * hidden**-0.5)
            layer = nn.TransformerEncoderLayer(hidden, max(1, hidden // 64), 2 * hidden, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            tokens = self.linear(x).view(x.shape[0], prefix_length, hidden)
            out = self.encoder(torch.cat([tokens, self.const.expand(x.shape[0], -1, -1)], dim=1))
            return out[:, prefix_length:]

    return _TransformerMapping()


@fill_doc
class PrefixCaptioner:
    """Caption image embeddings with a mapping network and a GPT-2 decoder (ClipCap).

    Parameters
    ----------
    decoder : str, path-like or transformers.GPT2LMHeadModel
        GPT-2 language model: a hub id ("gpt2", "gpt2-medium"), a local folder
        saved by ``save_pretrained``, or a model object (used as given and
        trained in place when ``train_decoder`` is True).
    tokenizer : str, path-like, transformers tokenizer or None
        Its tokenizer; None loads it from ``decoder`` when that is a hub id or
        folder. Captions end with the tokenizer's end-of-sequence token.
    prefix_length : int
        GPT-2 input embeddings made from one image embedding (ClipCap: 10).
    mapping : {"mlp", "transformer"}
        ClipCap's mapping networks: a two-layer MLP, or a transformer encoder
        over the prefix (``mapping_layers`` layers).
    mapping_layers : int
        Layers of the transformer mapping (ignored for "mlp").
    train_decoder : bool
        False trains the mapping network only (GPT-2 frozen); True fine-tunes
        both.
    normalize : bool
        Unit-normalize embeddings before the mapping network, in ``fit`` and
        ``generate`` alike (BrainSCUBA's projected directions are unit vectors).
    epochs, batch_size : int
        Passes over the training pairs and pairs per AdamW step.
    lr, weight_decay : float
        AdamW learning rate and weight decay.
    max_caption_tokens : int
        Training captions are cut to this many tokens.
    %(random_state)s
    %(device)s
    %(verbose)s

    Attributes
    ----------
    embed_dim_ : int
        Dimension of the image embeddings.
    mapping_ : torch.nn.Module
        The trained mapping network.
    decoder_ : transformers.GPT2LMHeadModel
        The GPT-2 decoder.
    tokenizer_ : transformers tokenizer
        The decoder's tokenizer.
    loss_history_ : array of shape (n_epochs,)
        Mean training cross-entropy (nats per caption token) of every epoch.

    Examples
    --------
    >>> captioner = PrefixCaptioner("gpt2").fit(clip_embeddings, captions)  # doctest: +SKIP
    >>> captioner.generate(clip_embeddings[:4], num_beams=5)  # doctest: +SKIP
    """

    def __init__(
        self,
        decoder: Any = "gpt2",
        tokenizer: Any = None,
        *,
        prefix_length: int = 10,
        mapping: str = "mlp",
        mapping_layers: int = 4,
        train_decoder: bool = False,
        normalize: bool = True,
        epochs: int = 10,
        batch_size: int = 32,
        lr: float = 2e-4,
        weight_decay: float = 0.01,
        max_caption_tokens: int = 40,
        random_state: int | None = None,
        device: Any = "auto",
        verbose: bool | int = False,
    ) -> None:
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.prefix_length = prefix_length
        self.mapping = mapping
        self.mapping_layers = mapping_layers
        self.train_decoder = train_decoder
        self.normalize = normalize
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_caption_tokens = max_caption_tokens
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ---------------------------------------------------------------- set-up
    def _check_params(self) -> None:
        if self.mapping not in _MAPPINGS:
            raise ValueError(f"The 'mapping' parameter of PrefixCaptioner must be one of {_MAPPINGS}. Got {self.mapping!r}.")
        for name in ("prefix_length", "mapping_layers", "epochs", "batch_size", "max_caption_tokens"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"The {name!r} parameter of PrefixCaptioner must be an integer >= 1. Got {value!r}.")
        if not self.lr > 0:
            raise ValueError(f"The 'lr' parameter of PrefixCaptioner must be > 0. Got {self.lr!r}.")

    def _load_language_model(self) -> None:
        transformers = _import_transformers()
        decoder = self.decoder
        if isinstance(decoder, (str, os.PathLike)):
            decoder = _load_pretrained("GPT-2 decoder", decoder, transformers.GPT2LMHeadModel)
        tokenizer = self.tokenizer
        if tokenizer is None:
            if not isinstance(self.decoder, (str, os.PathLike)):
                raise ValueError("PrefixCaptioner needs a 'tokenizer' when 'decoder' is a model object.")
            tokenizer = self.decoder
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = _load_pretrained("tokenizer", tokenizer, transformers.AutoTokenizer)
        if tokenizer.eos_token_id is None:
            raise ValueError("PrefixCaptioner's tokenizer has no end-of-sequence token (eos_token); captions need one.")
        if len(tokenizer) > decoder.get_input_embeddings().num_embeddings:
            raise ValueError(
                f"PrefixCaptioner's tokenizer has {len(tokenizer)} tokens but the decoder's vocabulary only "
                f"{decoder.get_input_embeddings().num_embeddings}; they do not belong together."
            )
        if getattr(decoder, "loss_type", None) is None:
            # GPT2LMHeadModel's class name maps to no loss, so transformers warns on every first training step
            # before falling back to the causal-LM loss; name that loss, which is what the captioner trains.
            decoder.loss_type = "ForCausalLM"
        self.decoder_, self.tokenizer_ = decoder, tokenizer

    def _embeddings(self, embeddings: Any, where: str) -> "torch.Tensor":
        import torch

        x = embeddings.detach().float().cpu().numpy() if isinstance(embeddings, torch.Tensor) else embeddings
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"The 'embeddings' of PrefixCaptioner.{where} must be an array of shape (n, embed_dim). Got shape {x.shape}.")
        if hasattr(self, "embed_dim_") and x.shape[1] != self.embed_dim_:
            raise ValueError(
                f"The 'embeddings' of PrefixCaptioner.{where} have {x.shape[1]} dimensions; the captioner was "
                f"trained on {self.embed_dim_}-dimensional embeddings."
            )
        if not np.isfinite(x).all():
            raise ValueError(f"The 'embeddings' of PrefixCaptioner.{where} contain NaN or inf.")
        t = torch.from_numpy(x)
        if self.normalize:
            t = t / t.norm(dim=1, keepdim=True).clamp_min(torch.finfo(t.dtype).tiny)
        return t

    def _prefix(self, x: "torch.Tensor") -> "torch.Tensor":
        return self.mapping_(x.to(self._device)).to(self.decoder_.dtype)

    # ------------------------------------------------------------------ fit
    def fit(self, embeddings: Any, captions: Sequence[str]) -> "PrefixCaptioner":
        """Train on (embedding, caption) pairs with teacher forcing.

        Parameters
        ----------
        embeddings : array of shape (n_pairs, embed_dim)
            Image embeddings (numpy array or torch tensor).
        captions : sequence of str of length n_pairs
            A caption of every embedding's image.

        Returns
        -------
        self : PrefixCaptioner
        """
        import torch

        from .._device import resolve_device

        self._check_params()
        if hasattr(self, "embed_dim_"):
            del self.embed_dim_  # a refit may change the embedding dimension
        x = self._embeddings(embeddings, "fit")
        captions = list(captions)
        if len(captions) != len(x) or not all(isinstance(c, str) for c in captions):
            raise ValueError(
                f"The 'captions' of PrefixCaptioner.fit must be {len(x)} strings, one per embedding. Got {len(captions)} items."
            )
        seed = int(np.random.default_rng(self.random_state).integers(2**31))
        torch.manual_seed(seed)
        self._load_language_model()
        self._device = resolve_device(self.device)
        hidden = self.decoder_.get_input_embeddings().embedding_dim
        self.embed_dim_ = int(x.shape[1])
        self.mapping_ = _mapping_network(self.mapping, self.embed_dim_, hidden, self.prefix_length, self.mapping_layers)
        self.mapping_.to(self._device)
        self.decoder_.to(self._device)
        self.decoder_.requires_grad_(bool(self.train_decoder))
        params = list(self.mapping_.parameters()) + (list(self.decoder_.parameters()) if self.train_decoder else [])
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

        eos = self.tokenizer_.eos_token
        tokens = self.tokenizer_([c + eos for c in captions], truncation=True, max_length=self.max_caption_tokens)["input_ids"]
        generator = torch.Generator().manual_seed(seed)
        history = []
        self.mapping_.train()
        self.decoder_.train(bool(self.train_decoder))
        for _ in progress(range(self.epochs), verbose=self.verbose, desc="PrefixCaptioner.fit", unit="epoch"):
            order = torch.randperm(len(x), generator=generator).tolist()
            total, n_tokens = 0.0, 0
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                loss, count = self._loss(x[batch], [tokens[i] for i in batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, n_tokens = total + loss.item() * count, n_tokens + count
            history.append(total / max(n_tokens, 1))
        self.mapping_.eval()
        self.decoder_.eval()
        self.loss_history_ = np.asarray(history)
        return self

    def _loss(self, x: "torch.Tensor", token_lists: list[list[int]]) -> tuple["torch.Tensor", int]:
        """Mean cross-entropy over the caption tokens of a batch (the prefix is never a target)."""
        import torch

        n, length = len(token_lists), max(len(t) for t in token_lists)
        ids = torch.full((n, length), self.tokenizer_.eos_token_id, dtype=torch.long)
        mask = torch.zeros((n, length), dtype=torch.long)
        for i, t in enumerate(token_lists):
            ids[i, : len(t)] = torch.as_tensor(t)
            mask[i, : len(t)] = 1
        ids, mask = ids.to(self._device), mask.to(self._device)
        prefix = self._prefix(x)
        inputs = torch.cat([prefix, self.decoder_.get_input_embeddings()(ids)], dim=1)
        attention = torch.cat([torch.ones(n, self.prefix_length, dtype=torch.long, device=self._device), mask], dim=1)
        ignore = torch.full((n, self.prefix_length), -100, dtype=torch.long, device=self._device)
        labels = torch.cat([ignore, ids.masked_fill(mask == 0, -100)], dim=1)
        out = self.decoder_(inputs_embeds=inputs, attention_mask=attention, labels=labels)
        return out.loss, int(mask.sum())

    # -------------------------------------------------------------- generate
    def generate(
        self, embeddings: Any, *, num_beams: int = 5, max_new_tokens: int = 30, batch_size: int = 64
    ) -> list[str]:
        """Caption embeddings by beam search (transformers' ``generate`` from the prefix embeddings).

        Parameters
        ----------
        embeddings : array of shape (n, embed_dim)
            Image embeddings, or any vectors in the same space (BrainSCUBA's
            projected voxel directions).
        num_beams : int
            Beam width (ClipCap and BrainSCUBA use 5); 1 is greedy decoding.
        max_new_tokens : int
            Longest caption in tokens.
        batch_size : int
            Embeddings captioned per ``generate`` call (bounds memory).

        Returns
        -------
        list of str of length n
        """
        import torch

        if not hasattr(self, "mapping_"):
            raise ValueError("This PrefixCaptioner is not fitted yet: call fit(embeddings, captions) or load one.")
        x = self._embeddings(embeddings, "generate")
        eos = self.tokenizer_.eos_token_id
        captions: list[str] = []
        starts = range(0, len(x), batch_size)
        with torch.no_grad():
            for start in progress(starts, verbose=self.verbose, desc="captions", total=len(starts), unit="batch"):
                prefix = self._prefix(x[start : start + batch_size])
                attention = torch.ones(prefix.shape[:2], dtype=torch.long, device=self._device)
                out = self.decoder_.generate(
                    inputs_embeds=prefix, attention_mask=attention, num_beams=num_beams, do_sample=False,
                    max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=eos,
                )
                captions += [c.strip() for c in self.tokenizer_.batch_decode(out, skip_special_tokens=True)]
        return captions

    # ------------------------------------------------------------ save, load
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted captioner to a folder atomically (read it with :func:`load_prefix_captioner`).

        The folder holds ``config.json``, ``mapping.safetensors``, the decoder
        (``decoder/``, safetensors) and the tokenizer files (``tokenizer/``).
        An existing folder at ``path`` is replaced only once the new one is complete.

        Parameters
        ----------
        path : path-like
            The folder to write.

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        from .captioner_io import save_prefix_captioner

        return save_prefix_captioner(self, path)


