"""Images read pixel by pixel: sequential (and permuted) MNIST, grayscale sequential CIFAR-10, digits.

Each image becomes a one-dimensional sequence of its pixel intensities in scan-line order (row by
row, from the top left to the bottom right), one pixel per step, and the task is to classify it
from the state after the last step (Dubinin & Effenberger 2023, section 4). Intensities are scaled
to ``[0, 1]`` (the paper does not normalise further). A permuted task applies one fixed random
permutation of the pixel positions to every sequence.

MNIST and CIFAR-10 are read from local files in their official formats (see :func:`data_root`
for where); the 8×8 digits of scikit-learn ship with scikit-learn and work offline.
"""

from __future__ import annotations

import functools
import gzip
import io
import logging
import math
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from lyapkit._checks import integer, number
from lyapkit.trainers.tasks.base import (
    Task,
    data_root,
    min_performance_or,
    optional_count,
)

log = logging.getLogger(__name__)

NUM_CLASSES = 10
#: Default threshold of minimal performance for the ten-class tasks: twice the chance accuracy.
CHANCE_ACCURACY_THRESHOLD = 2 / NUM_CLASSES

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_URLS = (
    "https://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: ITU-R BT.601 luma weights of (R, G, B), as PIL's ``convert("L")``, torchvision's ``Grayscale``
#: and TensorFlow's ``rgb_to_grayscale`` (used for the Long Range Arena's sCIFAR) use them.
GRAYSCALE_WEIGHTS = (0.299, 0.587, 0.114)

# IDX type codes (third byte of the magic number) and their big-endian numpy types.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (LeCun's MNIST format), plain or gzip-compressed (``.gz``).

    An IDX file starts with a 4-byte magic number ``0x00 0x00 <type> <ndim>`` (type ``0x08``
    unsigned byte, ``0x09`` signed byte, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E``
    float64), then ``ndim`` big-endian uint32 dimensions, then the data in C order, big-endian.
    MNIST images are ``0x00000803`` ``(N, 28, 28)`` and labels ``0x00000801`` ``(N,)``.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a name ending in ``.gz`` is read through gzip.

    Returns
    -------
    numpy.ndarray
        The data, in native byte order.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not a valid IDX file (bad magic number, truncated, trailing bytes, or a
        corrupt gzip stream); the message names the file.

    See Also
    --------
    lyapkit.trainers.tasks.sequential_mnist : Reads the four MNIST IDX files.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied to
       document recognition", Proceedings of the IEEE 86(11), 2278–2324, 1998.

    Examples
    --------
    >>> import struct
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from lyapkit.trainers.tasks import read_idx
    >>> labels = np.arange(5, dtype=np.uint8)
    >>> header = bytes([0, 0, 0x08, 1]) + struct.pack(">I", len(labels))  # uint8, 1 dimension
    >>> _ = Path("labels-idx1-ubyte").write_bytes(header + labels.tobytes())
    >>> read_idx("labels-idx1-ubyte")
    array([0, 1, 2, 3, 4], dtype=uint8)
    """
    path = Path(path)
    compressed = path.suffix == ".gz"
    with (gzip.open if compressed else open)(path, "rb") as stream:
        try:
            raw = stream.read()
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path} is not a readable gzip file: {err}") from err
    magic = raw[:4]
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_TYPES or magic[3] == 0:
        raise ValueError(
            f"{path} is not an IDX file: its magic number is 0x{magic.hex() or '(empty)'}, expected "
            "0x0000TTDD (TT a type code such as 08 for unsigned bytes, DD the number of dimensions)"
        )
    ndim, header = magic[3], 4 + 4 * magic[3]
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: the IDX header of {ndim} dimensions is incomplete")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[magic[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path} is corrupt: its IDX header declares {dtype.name} data of shape {shape} "
            f"({expected} bytes in all), but the file{' (uncompressed)' if compressed else ''} "
            f"has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _missing_files_error(
    dataset: str, directory: Path, missing: list[str], how: str
) -> FileNotFoundError:
    return FileNotFoundError(
        f"{dataset} data not found: {directory} must contain {', '.join(missing)}. {how} "
        "(pass root=... or set the environment variable LYAPKIT_DATA to use another data "
        "directory than ~/.lyapkit/data)."
    )


def _mnist_split(
    directory: Path, split: str, limit: int | None, name: str
) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = (_existing(directory / f) for f in MNIST_FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{image_file} does not hold MNIST images: expected unsigned bytes of shape (N, 28, 28) "
            f"(magic number 0x00000803), got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{label_file} does not hold the {len(images)} MNIST labels of {image_file.name}: "
            f"expected unsigned bytes of shape ({len(images)},) (magic number 0x00000801), got "
            f"{labels.dtype} {labels.shape}"
        )
    _check_labels(labels, label_file)
    n = optional_count(limit, name, len(images))
    return images[:n].reshape(n, -1), labels[:n]


def _existing(path: Path) -> Path:
    """``path``, or its ``.gz`` version when only that exists."""
    compressed = path.with_name(path.name + ".gz")
    return compressed if not path.exists() and compressed.exists() else path


def _check_labels(labels: np.ndarray, path: Path) -> None:
    if labels.size and not 0 <= labels.min() <= labels.max() < NUM_CLASSES:
        raise ValueError(f"{path} is corrupt: labels must lie in 0 … {NUM_CLASSES - 1}")


def _permutation(length: int, permuted: bool, seed: int) -> np.ndarray | None:
    if not permuted:
        return None
    return np.random.default_rng(integer(seed, "permutation_seed", 0)).permutation(length)


def _classification_task(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    permutation: np.ndarray | None,
    min_performance: float | None,
    info: dict,
) -> Task:
    """A ten-class, last-step task from float pixel sequences ``(N, T)`` in [0, 1] and labels."""
    tensors = []
    for pixels, labels in (train, test):
        if permutation is not None:
            pixels = pixels[:, permutation]
        inputs = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)[..., None])
        tensors += [inputs, torch.from_numpy(labels.astype(np.int64))]
    if permutation is not None:
        info = {**info, "permutation": permutation}
    return Task(
        name=("p" if permutation is not None else "") + name,
        input_size=1,
        output_size=NUM_CLASSES,
        loss="cross_entropy",
        readout="last",
        metric="accuracy",
        min_performance=min_performance_or(min_performance, CHANCE_ACCURACY_THRESHOLD),
        train_inputs=tensors[0],
        train_targets=tensors[1],
        test_inputs=tensors[2],
        test_targets=tensors[3],
        info=info,
    )


def sequential_mnist(
    root: str | os.PathLike | None = None,
    permuted: bool = False,
    permutation_seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    min_performance: float | None = None,
) -> Task:
    """Sequential MNIST (sMNIST; LeCun et al. 1998) or, with ``permuted``, permuted sMNIST (psMNIST).

    Each 28×28 digit becomes a sequence of ``T = 784`` intensities in scan-line order, scaled
    from bytes to ``[0, 1]``, ``u_t = pixel[π(t)] / 255`` (``π`` the identity, or for psMNIST one
    fixed random permutation); ten classes, read out at the last step (Dubinin & Effenberger
    2023, section 4 [2]_).

    Parameters
    ----------
    root : str or os.PathLike, optional
        The data directory (default :func:`lyapkit.trainers.tasks.data_root`); the files are read
        from ``<root>/mnist/``:
        ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
        ``t10k-labels-idx1-ubyte``, each plain or gzip-compressed (the same name + ``.gz``).
    permuted : bool, default False
        Apply one fixed permutation of the 784 pixel positions to every sequence (psMNIST).
    permutation_seed : int, default 0
        Seeds the permutation, ``numpy.random.default_rng(permutation_seed).permutation(784)``
        (also in ``task.info["permutation"]``).
    n_train, n_test : int, optional
        Use only the first ``n`` images of each split, in file order (default: all, 60000/10000).
    min_performance : float, optional
        Threshold of minimal performance on the accuracy; default 0.2 (twice chance, see
        ``lyapkit.trainers.tasks``).

    Returns
    -------
    Task
        inputs float32 ``(N, 784, 1)`` in ``[0, 1]``, int64 labels ``(N,)``; named ``"sMNIST"``
        or ``"psMNIST"``, ``task.info["root"]`` the directory read.

    Raises
    ------
    FileNotFoundError
        When a file is missing; the message names the directory, the files and where to get them.
    ValueError
        When a file is not a valid MNIST IDX file, or ``n_train``/``n_test`` exceeds the split
        or is not a positive integer, or ``permutation_seed`` is negative.

    See Also
    --------
    lyapkit.trainers.tasks.read_idx : Reads one IDX file.
    lyapkit.trainers.tasks.sequential_digits : A small offline stand-in.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied to
       document recognition", Proceedings of the IEEE 86(11), 2278–2324, 1998.
    .. [2] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    Six random training and four test "digits" written as IDX files stand in for MNIST:

    >>> import struct
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from lyapkit.trainers.tasks import sequential_mnist
    >>> def write_idx(path, array):
    ...     header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    ...     path.write_bytes(header + array.astype(np.uint8).tobytes())
    >>> folder = Path("mnist-demo/mnist")
    >>> folder.mkdir(parents=True, exist_ok=True)
    >>> rng = np.random.default_rng(0)
    >>> for prefix, n in (("train", 6), ("t10k", 4)):
    ...     write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
    ...     write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n))
    >>> task = sequential_mnist(root="mnist-demo", permuted=True)
    >>> task.name, tuple(task.train_inputs.shape), task.train_targets.tolist()
    ('psMNIST', (6, 784, 1), [0, 1, 2, 3, 4, 5])
    >>> sequential_mnist(root="nowhere")
    Traceback (most recent call last):
    ...
    FileNotFoundError: MNIST data not found: nowhere/mnist must contain train-images-idx3-ubyte, ...
    """
    directory = data_root(root) / "mnist"
    missing = [
        f for files in MNIST_FILES.values() for f in files if not _existing(directory / f).exists()
    ]
    if missing:
        raise _missing_files_error(
            "MNIST",
            directory,
            missing,
            f"Download them from {MNIST_URLS[0]} (or the mirror {MNIST_URLS[1]}) and put them "
            "there, gzip-compressed (.gz) or not",
        )
    train_images, train_labels = _mnist_split(directory, "train", n_train, "n_train")
    test_images, test_labels = _mnist_split(directory, "test", n_test, "n_test")
    log.debug("read MNIST from %s", directory)
    return _classification_task(
        "sMNIST",
        (train_images / np.float32(255), train_labels),
        (test_images / np.float32(255), test_labels),
        _permutation(28 * 28, permuted, permutation_seed),
        min_performance,
        {"root": directory},
    )


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays only (what a CIFAR-10 batch holds), so that
    a foreign file cannot run code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(gray, labels)`` of one CIFAR-10 python batch: gray float32 ``(N, 1024)`` in [0, 1]."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as err:  # a damaged pickle fails in many ways; name the file instead
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch (unpickling failed: {err})"
        ) from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        found = list(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch: expected a dict with the keys b'data' and "
            f"b'labels', got {found}"
        )
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3072,):
        raise ValueError(
            f"{path} is corrupt: b'data' must be unsigned bytes of shape (N, 3072), got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}"
        )
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path} is corrupt: b'labels' must be {len(data)} integer labels")
    _check_labels(labels, path)
    rgb = data.reshape(len(data), 3, 1024).astype(np.float32)
    gray = np.einsum("c,ncp->np", np.asarray(GRAYSCALE_WEIGHTS, np.float32) / 255, rgb)
    return gray, labels


def _cifar_split(
    directory: Path, split: str, limit: int | None, name: str
) -> tuple[np.ndarray, np.ndarray]:
    batches = [_cifar_batch(directory / f) for f in CIFAR10_FILES[split]]
    gray, labels = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    n = optional_count(limit, name, len(gray))
    return gray[:n], labels[:n]


def sequential_cifar10(
    root: str | os.PathLike | None = None,
    permuted: bool = False,
    permutation_seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    min_performance: float | None = None,
) -> Task:
    """Grayscale sequential CIFAR-10 (sCIFAR10; Krizhevsky 2009), as in the Long Range Arena.

    Each 32×32 colour image becomes a sequence of ``T = 1024`` gray levels in scan-line order,
    ``gray = (0.299 R + 0.587 G + 0.114 B) / 255`` in ``[0, 1]`` (ITU-R BT.601 luma, kept in
    floating point); ten classes, read out at the last step [1]_ [2]_.

    Parameters
    ----------
    root : str or os.PathLike, optional
        The data directory (default :func:`lyapkit.trainers.tasks.data_root`); the batches are
        read from
        ``<root>/cifar-10-batches-py/``: ``data_batch_1`` … ``data_batch_5`` (training, in that
        order) and ``test_batch``, the pickled dicts of the official "CIFAR-10 python version"
        (keys ``b"data"``: uint8 ``(N, 3072)``, the red, green and blue 32×32 planes one after the
        other; ``b"labels"``: N ints). Only numpy arrays and plain containers are unpickled.
    permuted : bool, default False
        Apply one fixed permutation of the 1024 pixel positions to every sequence.
    permutation_seed : int, default 0
        Seeds the permutation (``task.info["permutation"]``), as for
        :func:`lyapkit.trainers.tasks.sequential_mnist`.
    n_train, n_test : int, optional
        Use only the first ``n`` images of each split (default: all, 50000/10000).
    min_performance : float, optional
        Threshold of minimal performance on the accuracy; default 0.2 (twice chance).

    Returns
    -------
    Task
        inputs float32 ``(N, 1024, 1)`` in ``[0, 1]``, int64 labels ``(N,)``; named
        ``"sCIFAR10"`` or ``"psCIFAR10"``, ``task.info["root"]`` the directory read.

    Raises
    ------
    FileNotFoundError
        When a batch is missing; the message names the directory, the files and the download.
    ValueError
        When a batch is not a valid CIFAR-10 python batch (or holds anything but arrays and
        plain containers), or ``n_train``/``n_test`` exceeds the split or is not a positive
        integer, or ``permutation_seed`` is negative.

    See Also
    --------
    lyapkit.trainers.tasks.sequential_mnist : The same construction for MNIST.

    References
    ----------
    .. [1] A. Krizhevsky, "Learning multiple layers of features from tiny images", technical
       report, University of Toronto, 2009.
    .. [2] Y. Tay, M. Dehghani, S. Abnar, Y. Shen, D. Bahri, P. Pham, J. Rao, L. Yang,
       S. Ruder and D. Metzler, "Long Range Arena: a benchmark for efficient transformers",
       International Conference on Learning Representations (ICLR), 2021.

    Examples
    --------
    Six batches of two images stand in for CIFAR-10; the first image of each is pure red:

    >>> import pickle
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from lyapkit.trainers.tasks import sequential_cifar10
    >>> folder = Path("cifar-demo/cifar-10-batches-py")
    >>> folder.mkdir(parents=True, exist_ok=True)
    >>> data = np.zeros((2, 3072), dtype=np.uint8)
    >>> data[0, :1024] = 255  # the red plane of image 0
    >>> for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    ...     _ = (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": [3, 7]}))
    >>> task = sequential_cifar10(root="cifar-demo")
    >>> task.name, tuple(task.train_inputs.shape), tuple(task.test_inputs.shape)
    ('sCIFAR10', (10, 1024, 1), (2, 1024, 1))
    >>> round(float(task.train_inputs[0, 0, 0]), 3)  # 0.299 R / 255
    0.299
    """
    base = data_root(root)
    directory = base / CIFAR10_DIR
    missing = [f for files in CIFAR10_FILES.values() for f in files if not (directory / f).exists()]
    if missing:
        raise _missing_files_error(
            "CIFAR-10",
            directory,
            missing,
            f"Download the python version {CIFAR10_URL} and extract it into {base} "
            f"(tar -xzf cifar-10-python.tar.gz -C {base})",
        )
    train = _cifar_split(directory, "train", n_train, "n_train")
    test = _cifar_split(directory, "test", n_test, "n_test")
    log.debug("read CIFAR-10 from %s", directory)
    return _classification_task(
        "sCIFAR10",
        train,
        test,
        _permutation(32 * 32, permuted, permutation_seed),
        min_performance,
        {"root": directory},
    )


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits, read once per process (parsing its CSV takes ~20 ms): the
    intensities ``pixel / 16`` ``(1797, 64)`` and the labels ``(1797,)``, read-only."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels, labels = digits.data / 16, digits.target
    pixels.flags.writeable = labels.flags.writeable = False
    return pixels, labels


def sequential_digits(
    permuted: bool = False,
    seed: int = 0,
    test_fraction: float = 0.25,
    permutation_seed: int = 0,
    min_performance: float | None = None,
) -> Task:
    """The 8×8 handwritten digits bundled with scikit-learn as a 64-step sequential task.

    A small real data set that needs no download: 1797 images of 8×8 pixels with 17 gray levels
    (UCI optical recognition of handwritten digits), read in scan-line order as sMNIST is
    (``T = 64``, intensities ``u_t = pixel[π(t)] / 16`` in ``[0, 1]``), ten classes. Plain
    (sDigits, ``π`` the identity) or with one fixed pixel permutation ``π`` (psDigits).

    Parameters
    ----------
    permuted : bool, default False
        Apply one fixed permutation of the 64 pixel positions to every sequence.
    seed : int, default 0
        Seeds the stratified train/test split (``sklearn.model_selection.train_test_split``).
    test_fraction : float, default 0.25
        Share of the images in the test set, in ``(0, 1)``.
    permutation_seed : int, default 0
        Seeds the permutation (``task.info["permutation"]``), as for
        :func:`lyapkit.trainers.tasks.sequential_mnist`.
    min_performance : float, optional
        Threshold of minimal performance on the accuracy; default 0.2 (twice chance).

    Returns
    -------
    Task
        inputs float32 ``(N, 64, 1)`` in ``[0, 1]``, int64 labels ``(N,)``; 1347 training and
        450 test images by default; named ``"sDigits"`` or ``"psDigits"``.

    Raises
    ------
    ImportError
        When scikit-learn is not installed (``pip install "lyapkit[tasks]"``).
    ValueError
        ``test_fraction`` is outside ``(0, 1)``, or ``seed`` or ``permutation_seed`` is not a
        non-negative integer.

    See Also
    --------
    lyapkit.trainers.tasks.sequential_mnist : The full-size data set, read the same way.

    Examples
    --------
    >>> from lyapkit.trainers.tasks import sequential_digits
    >>> task = sequential_digits(seed=0)
    >>> task.name, tuple(task.train_inputs.shape), tuple(task.test_inputs.shape)
    ('sDigits', (1347, 64, 1), (450, 64, 1))
    >>> sequential_digits(permuted=True).name
    'psDigits'
    """
    try:
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise ImportError(
            'sequential_digits needs scikit-learn: install it with pip install "lyapkit[tasks]"'
        ) from err
    number(test_fraction, "test_fraction", positive=True, below=1)
    seed = integer(seed, "seed", 0)
    pixels, labels = _digits()
    train_x, test_x, train_y, test_y = train_test_split(
        pixels, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    return _classification_task(
        "sDigits",
        (train_x, train_y),
        (test_x, test_y),
        _permutation(64, permuted, permutation_seed),
        min_performance,
        {},
    )
