"""What the mean-shift kernels (C and numba) agree on, importable without numba.

Kernels are given by id: 0 flat, 1 epanechnikov, 2 gaussian. Distances reach the kernels already
divided by the bandwidth, so a window is always "normalised squared distance <= support^2", with
support 1 (flat, epanechnikov) or 3 (gaussian, truncated at 3 bandwidths, where its weight is 1.1 %).
"""

FLAT, EPANECHNIKOV, GAUSSIAN = 0, 1, 2
FAR = 1e15  # a range value no window accepts (image padding); its square still fits float64
BLOCK = 16  # image windows are read in blocks of this many columns: a constant trip count
BAND = 16  # rows per task: the speed-ups share modes only inside a band, so results never
#            depend on how many threads run or in which order the bands finish
