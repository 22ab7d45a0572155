"""What makes seglab's clustering estimators scikit-learn estimators, without importing it.

scikit-learn's protocol is a handful of conventions (Buitinck et al., 2013): parameters stored as
given in ``__init__`` and listed by ``get_params``, changed by ``set_params``, fitted state in
attributes ending in ``_``, ``n_features_in_``, an unfitted estimator raising an error that is both
a ``ValueError`` and an ``AttributeError``, and tags for its checks. :class:`EstimatorMixin` keeps
them here, so ``sklearn.base.clone``, ``Pipeline``, ``GridSearchCV`` and ``check_estimator`` accept
the estimators, while a plain ``seglab segment`` does not pay a second to import scikit-learn.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np


class NotFittedError(ValueError, AttributeError):
    """An estimator used before ``fit``: a ``ValueError`` and an ``AttributeError``, as
    scikit-learn's ``NotFittedError``. When scikit-learn is in use (imported), the error raised
    is also an instance of scikit-learn's, so ``except`` clauses of either library catch it."""


class EstimatorMixin:
    """``get_params`` / ``set_params`` / ``repr`` / tags, as scikit-learn's ``BaseEstimator``."""

    _estimator_type = "clusterer"

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters given to ``__init__`` (with ``deep``, those of nested estimators too,
        as ``name__param``)."""
        params = {}
        for name in self._param_names():
            value = getattr(self, name)
            params[name] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params |= {f"{name}__{k}": v for k, v in value.get_params().items()}
        return params

    def set_params(self, **params: Any):
        """Set parameters by name (``name__param`` for nested estimators); returns self."""
        valid = self._param_names()
        nested: dict[str, dict] = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; its parameters are "
                    f"{', '.join(valid)}"
                )
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub in nested.items():
            getattr(self, name).set_params(**sub)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        shown = []
        for name in self._param_names():
            value = getattr(self, name)
            default = defaults.get(name, inspect.Parameter.empty)
            same = value is default or (
                not isinstance(value, np.ndarray) and _equal(value, default)
            )
            if not same:
                shown.append(f"{name}={'array' if isinstance(value, np.ndarray) else repr(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_tags__(self):
        """scikit-learn's tags (imported only when scikit-learn asks): a clusterer of dense,
        finite 2-d arrays (sparse input is refused with a message)."""
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="clusterer",
            target_tags=TargetTags(required=False),
            input_tags=InputTags(sparse=False, allow_nan=False),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_in_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise not_fitted(self)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def not_fitted(estimator: Any) -> NotFittedError:
    """The error for ``estimator`` used before ``fit``."""
    import sys

    cls: type = NotFittedError
    if "sklearn" in sys.modules:  # the user works with scikit-learn: be its error too
        cls = _both_not_fitted()
    return cls(
        f"this {type(estimator).__name__} instance is not fitted yet; call 'fit' with "
        "appropriate arguments before using this estimator"
    )


_BOTH: list[type] = []


def _both_not_fitted() -> type:
    if not _BOTH:
        from sklearn.exceptions import NotFittedError as SklearnNotFitted

        _BOTH.append(type("NotFittedError", (NotFittedError, SklearnNotFitted), {}))
    return _BOTH[0]


def check_array(
    X: Any, name: str = "X", estimator: str = "estimator", *, check_finite: bool = True
) -> np.ndarray:
    """X as a C-contiguous, writeable float32 (kept) or float64 2-d array of finite numbers, with
    scikit-learn's wording for the refusals its checks look for. ``check_finite=False`` leaves
    the NaN/infinity test to a caller whose own first pass over X makes it (a pass and a
    temporary less on large data)."""
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{estimator} does not support sparse input: pass a dense array (X.toarray()); "
            "sparse data is not supported"
        )
    if hasattr(X, "dtype") and np.iscomplexobj(X):
        raise ValueError("Complex data not supported")
    X = np.asarray(X)
    if np.iscomplexobj(X):
        raise ValueError("Complex data not supported")
    if X.dtype.kind in "OUS":
        X = X.astype(np.float64)  # numbers given as objects or strings; others raise TypeError
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-d (n_samples, n_features) array for {name}, got shape {X.shape}. "
            "Reshape your data with X.reshape(-1, 1) for a single feature or X.reshape(1, -1) "
            "for a single sample"
        )
    if X.shape[1] == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if X.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        if X.dtype != np.bool_:
            raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    X = np.array(X, dtype=dtype, order="C", copy=not X.flags.writeable or None)
    if check_finite and not np.isfinite(X).all():
        raise ValueError(f"Input {name} contains NaN or infinity; expected finite numbers")
    return X


def check_features(estimator: Any, X: np.ndarray) -> None:
    """Refuse X whose number of features differs from the one ``estimator`` was fitted on."""
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input"
        )


def as_generator(random_state: Any) -> np.random.Generator:
    """A numpy Generator from None, an int, a ``RandomState`` (its stream continues) or a
    Generator (used as is), as scikit-learn's ``random_state`` is accepted."""
    import numbers

    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1, size=4))
    raise ValueError(
        f"random_state must be None, an int, a numpy RandomState or Generator, got {random_state!r}"
    )
