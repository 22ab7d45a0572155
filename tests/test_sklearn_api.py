"""The clustering estimators as scikit-learn sees them: its own check suite is the judge."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError as SklearnNotFitted  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from seglab.cluster import KMeans, KMeansSegmenter, MeanShift, MeanShiftSegmenter  # noqa: E402

pytestmark = pytest.mark.slow


def _expected_failures(estimator):
    """The checks scikit-learn expects its own KMeans to fail, for the same reason."""
    if isinstance(estimator, KMeans):
        why = ("sample_weight is not equivalent to removing/repeating samples when the repeated "
               "rows are shuffled (the random seeding differs); scikit-learn's KMeans is exempt "
               "too. Same order: see test_random_state_forms_and_sample_weight_equals_repetition")  # fmt: skip
        return {"check_sample_weight_equivalence_on_dense_data": why}
    return {}


@parametrize_with_checks(
    [KMeans(), MeanShift(), KMeans(n_clusters=3, random_state=0), MeanShift(bandwidth=2.0)],
    expected_failed_checks=_expected_failures,
)
def test_scikit_learn_check_suite(estimator, check):
    check(estimator)


def _blobs(seed=0):
    r = np.random.default_rng(seed)
    return np.concatenate([r.normal(c, 0.3, (40, 2)) for c in ((0, 0), (4, 4), (0, 5))])


def test_clone_pipeline_and_grid_search():
    X = _blobs()
    for est in (KMeans(3, random_state=1), MeanShift(bandwidth=1.5), KMeansSegmenter(4),
                MeanShiftSegmenter(spatial_bandwidth=5)):  # fmt: skip
        twin = clone(est)
        assert twin.get_params() == est.get_params() and twin is not est
    pipe = make_pipeline(StandardScaler(), KMeans(3, random_state=0)).fit(X)
    assert len(np.unique(pipe.predict(X))) == 3
    search = GridSearchCV(KMeans(random_state=0), {"n_clusters": [2, 3, 4]}, cv=3).fit(X)
    assert search.best_params_["n_clusters"] in (3, 4)  # score is -inertia: more is never worse
    seg = KMeansSegmenter().set_params(n_clusters=3, features="rgb")
    assert seg.n_clusters == 3 and "n_clusters=3" in repr(seg)
    with pytest.raises(ValueError, match="no parameter 'k'"):
        KMeans().set_params(k=3)


def test_unfitted_is_scikit_learns_error_and_score_checks_features():
    for est in (KMeans(2), MeanShift(), KMeansSegmenter(2)):
        with pytest.raises(SklearnNotFitted):
            est.predict(np.zeros((3, 5)))
    km = KMeans(3, random_state=0).fit(np.random.default_rng(0).random((50, 4)))
    with pytest.raises(ValueError, match="X has 6 features, but KMeans is expecting 4"):
        km.score(np.zeros((5, 6)))  # used to read past the centres' rows
    with pytest.raises(TypeError, match="sparse"):
        from scipy.sparse import csr_matrix

        KMeans(2).fit(csr_matrix(np.eye(4)))


def test_random_state_forms_and_sample_weight_equals_repetition():
    X = _blobs(3)
    labels = [KMeans(3, random_state=rs).fit(X).labels_ for rs in (0, np.random.RandomState(0),
                                                                    np.random.default_rng(0))]  # fmt: skip
    assert all(len(np.unique(lab)) == 3 for lab in labels)
    w = np.random.default_rng(1).integers(1, 4, len(X))
    weighted = KMeans(3, random_state=5).fit(X, sample_weight=w)
    repeated = KMeans(3, random_state=5).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-10)
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-10)
    assert weighted.n_iter_ == repeated.n_iter_
    from sklearn.cluster import KMeans as SkKMeans

    init = weighted.cluster_centers_ + 0.3
    ours = KMeans(3, init=init, tol=0).fit(X, sample_weight=w)
    theirs = SkKMeans(3, init=init, n_init=1, tol=0).fit(X, sample_weight=w)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-9)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9)


def test_scikit_learns_own_kmeans_fails_the_same_check():
    """The one check KMeans is exempt from is one scikit-learn's KMeans fails too."""
    from sklearn.cluster import KMeans as SklearnKMeans
    from sklearn.utils.estimator_checks import check_estimator

    failing = _expected_failures(KMeans())  # scikit-learn's also takes sparse input: same check
    failing["check_sample_weight_equivalence_on_sparse_data"] = failing[next(iter(failing))]
    check_estimator(SklearnKMeans(), expected_failed_checks=failing)  # passes with the exemption
    with pytest.raises(AssertionError, match="not equivalent"):
        check_estimator(SklearnKMeans())
