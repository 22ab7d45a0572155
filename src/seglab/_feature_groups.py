"""The feature groups of :func:`seglab.features.pixel_features`, in a module that imports nothing,
so the command line lists them in its help without loading scikit-image."""

#: Feature group name -> number of dimensions it contributes.
FEATURE_GROUPS: dict[str, int] = {
    "rgb": 3,
    "lab": 3,
    "luv": 3,
    "edison": 3,
    "hsv": 3,
    "gray": 1,
    "xy": 2,
    "grad": 2,
    "texture": 9,
}
