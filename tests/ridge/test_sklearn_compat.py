"""scikit-learn's estimator checks on the ridge estimators."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from neurodec.ridge import KernelRidgeCV, RidgeCV


@parametrize_with_checks([RidgeCV(warn_alpha_edge=False), KernelRidgeCV(kernel="rbf", warn_alpha_edge=False)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
