"""neurodec's own implementations of vision architectures that no installed library ships.

Each module defines the model in plain torch, exposes its stages as named
layers, and registers its variants with :func:`neurodec.backbones.registry.register_backbone`.
"""
