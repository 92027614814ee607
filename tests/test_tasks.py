"""Tasks: the adding problem, the teacher–student task, and the image tasks read from files that
these tests write in the official formats (MNIST IDX, CIFAR-10 python batches)."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lyapkit.trainers.tasks import (  # noqa: E402
    TASKS,
    Task,
    adding_problem,
    data_root,
    make_task,
    read_idx,
    sequential_cifar10,
    sequential_digits,
    sequential_mnist,
    teacher_student,
)
from lyapkit.trainers.tasks.images import MNIST_FILES  # noqa: E402

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i2"): 0x0B, np.dtype("f4"): 0x0D}


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` as an IDX file: magic ``00 00 <type> <ndim>``, big-endian dims and data."""
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as stream:
        stream.write(payload)


@pytest.fixture
def mnist(tmp_path, rng):
    """A tiny MNIST in ``tmp_path/mnist``: 6 training and 4 test images (plain IDX files)."""
    directory = tmp_path / "mnist"
    directory.mkdir()
    data = {}
    for split, n in (("train", 6), ("test", 4)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        image_file, label_file = MNIST_FILES[split]
        write_idx(directory / image_file, images)
        write_idx(directory / label_file, labels)
        data[split] = images, labels
    return tmp_path, data


def write_cifar(root, rng, sizes=(3, 2, 2, 1, 2, 4)) -> dict[str, np.ndarray]:
    """Six CIFAR-10 python batches (data_batch_1..5, test_batch) as the real ones are pickled."""
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {}
    for name, n in zip(names, sizes, strict=True):
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(label) for label in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [b"img_%d.png" % i for i in range(n)],
        }
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))
        batches[name] = batch
    return batches


# ----------------------------------------------------------------------------- adding problem


@pytest.mark.parametrize("T", [2, 11, 100])
def test_adding_problem_targets_are_the_sum_of_the_two_cued_numbers(T):
    task = adding_problem(T, n_train=300, n_test=40, seed=3)
    assert (task.input_size, task.output_size, task.length) == (2, 1, T)
    assert (task.loss, task.readout, task.metric) == ("mse", "last", "rms")
    for split in ("train", "test"):
        inputs, targets = task.data(split)
        values, cues = inputs[..., 0], inputs[..., 1]
        assert inputs.dtype == targets.dtype == torch.float32
        assert targets.shape == (len(inputs), 1)
        assert ((values >= 0) & (values < 1)).all()
        assert set(cues.unique().tolist()) <= {0.0, 1.0} and (cues.sum(1) == 2).all()
        positions = cues.nonzero()[:, 1].reshape(-1, 2)  # two cues per row, in time order
        assert (positions[:, 0] < T // 2).all() and (positions[:, 1] >= T // 2).all()
        rows = torch.arange(len(inputs))
        expected = values[rows, positions[:, 0]] + values[rows, positions[:, 1]]
        torch.testing.assert_close(targets[:, 0], expected, rtol=0, atol=0)


def test_adding_problem_statistics_and_threshold():
    targets = adding_problem(20, n_train=20_000, n_test=1, seed=0).train_targets
    assert abs(targets.mean().item() - 1) < 0.02
    assert abs(targets.std().item() - math.sqrt(1 / 6)) < 0.01
    task = adding_problem(20, n_train=1, n_test=1)
    assert task.min_performance == pytest.approx(math.sqrt(1 / 6) / 2)
    assert task.reaches_min_performance(0.1) and not task.reaches_min_performance(0.3)
    assert adding_problem(20, n_train=1, n_test=1, min_performance=0.05).min_performance == 0.05


def test_generated_tasks_are_deterministic():
    a, b = adding_problem(50, 100, 20, seed=7), adding_problem(50, 100, 20, seed=7)
    c = adding_problem(50, 100, 20, seed=8)
    for split in ("train", "test"):
        assert all(torch.equal(x, y) for x, y in zip(a.data(split), b.data(split), strict=True))
        assert not torch.equal(a.data(split)[0], c.data(split)[0])
    # the test set has its own stream: it does not move with the size of the training set
    assert torch.equal(adding_problem(50, 30, 20, seed=7).test_inputs, a.test_inputs)
    s = teacher_student(0.9, T=30, n_train=8, n_test=4)
    t = teacher_student(0.9, 30, n_train=8, n_test=4)
    assert torch.equal(s.train_targets, t.train_targets)
    assert torch.equal(s.test_inputs, t.test_inputs)
    u = teacher_student(0.9, T=30, n_train=8, n_test=4, seed=1)
    assert not torch.equal(s.train_targets, u.train_targets)


@pytest.mark.parametrize(
    "bad", [{"T": 1}, {"n_train": 0}, {"seed": -1}, {"seed": 1.5}, {"min_performance": 0}]
)
def test_adding_problem_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        adding_problem(**{"T": 10, "n_train": 2, "n_test": 2, **bad})


# ----------------------------------------------------------------------------- teacher–student


@pytest.mark.parametrize("readout", ["sequence", "last"])
def test_teacher_student_targets_are_the_teachers_outputs(readout):
    task = teacher_student(0.95, T=40, hidden=6, n_train=16, n_test=8, seed=2, readout=readout)
    teacher = task.info["teacher"]
    assert teacher.hidden_size == 6 and not any(p.requires_grad for p in teacher.parameters())
    assert (teacher.eigenvalues().abs() >= 0.95 - 1e-6).all()
    assert (task.loss, task.metric, task.readout, task.length) == ("mse", "rms", readout, 40)
    for split in ("train", "test"):
        inputs, targets = task.data(split)
        assert targets.shape == (
            (len(inputs), 40, 1) if readout == "sequence" else (len(inputs), 1)
        )
        with torch.no_grad():
            torch.testing.assert_close(targets, teacher(inputs), rtol=1e-5, atol=1e-5)
    assert task.min_performance == pytest.approx(task.train_targets.std().item() / 2)


def test_teacher_student_inputs_are_standard_normal():
    inputs = teacher_student(0.5, T=20, n_train=5000, n_test=1).train_inputs
    assert inputs.shape == (5000, 20, 1)
    assert abs(inputs.mean().item()) < 0.01 and abs(inputs.std().item() - 1) < 0.01


# ----------------------------------------------------------------------------- IDX files


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i2", "f4"])
def test_read_idx_round_trip(tmp_path, rng, dtype, compress):
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array, compress)
    read = read_idx(path)
    assert read.dtype == np.dtype(dtype) and read.dtype.isnative
    np.testing.assert_array_equal(read, array)


def test_read_idx_rejects_corrupt_files(tmp_path, rng):
    good = tmp_path / "good"
    write_idx(good, rng.integers(0, 256, (2, 3), dtype=np.uint8))
    raw = good.read_bytes()
    cases = {
        "magic": b"\x08\x03" + raw[2:],  # first two bytes must be zero
        "magic number is 0x0000ff": raw[:2] + b"\xff" + raw[3:],  # unknown type code
        "declares uint8 data of shape": raw[:-1],  # truncated data
        "but the file has": raw + b"\0",  # trailing bytes
        "header of 2 dimensions is incomplete": raw[:7],
        "0x\\(empty\\)": b"",
    }
    for message, content in cases.items():
        path = tmp_path / "bad"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message):
            read_idx(path)
    (tmp_path / "bad.gz").write_bytes(raw)  # not gzip-compressed despite its name
    with pytest.raises(ValueError, match="bad.gz is not a readable gzip file"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


# ----------------------------------------------------------------------------- MNIST


def test_sequential_mnist_reads_pixels_in_scan_line_order(mnist):
    root, data = mnist
    task = sequential_mnist(root)
    assert (task.name, task.input_size, task.output_size, task.length) == ("sMNIST", 1, 10, 784)
    assert (task.loss, task.readout, task.metric) == ("cross_entropy", "last", "accuracy")
    assert task.min_performance == 0.2
    for split in ("train", "test"):
        images, labels = data[split]
        inputs, targets = task.data(split)
        assert inputs.shape == (len(images), 784, 1) and inputs.dtype == torch.float32
        assert targets.dtype == torch.int64 and targets.tolist() == labels.tolist()
        # step 28 r + c shows pixel (r, c), scaled to [0, 1]
        assert inputs[1, 28 * 5 + 17, 0].item() == pytest.approx(images[1, 5, 17] / 255)
        expected = torch.from_numpy(images.reshape(len(images), 784, 1) / np.float32(255))
        torch.testing.assert_close(inputs, expected, rtol=0, atol=0)


def test_sequential_mnist_reads_gzip_files_and_subsets(mnist):
    root, data = mnist
    plain = sequential_mnist(root)
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        path = root / "mnist" / name
        path.with_name(name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    compressed = sequential_mnist(root)
    for split in ("train", "test"):
        assert all(
            torch.equal(a, b)
            for a, b in zip(plain.data(split), compressed.data(split), strict=True)
        )
    small = sequential_mnist(root, n_train=2, n_test=3)
    assert torch.equal(small.train_inputs, plain.train_inputs[:2]) and len(small.test_inputs) == 3
    with pytest.raises(ValueError, match="n_train must be at most 6"):
        sequential_mnist(root, n_train=7)


def test_permuted_mnist_applies_one_fixed_permutation_to_every_sequence(mnist):
    root, _ = mnist
    plain = sequential_mnist(root)
    permuted = sequential_mnist(root, permuted=True, permutation_seed=5)
    perm = permuted.info["permutation"]
    assert permuted.name == "psMNIST"
    assert sorted(perm.tolist()) == list(range(784)) and (perm != np.arange(784)).any()
    for split in ("train", "test"):
        (x, y), (xp, yp) = plain.data(split), permuted.data(split)
        assert torch.equal(xp, x[:, torch.from_numpy(perm)]) and torch.equal(y, yp)
    again = sequential_mnist(root, permuted=True, permutation_seed=5).info["permutation"]
    other = sequential_mnist(root, permuted=True, permutation_seed=6).info["permutation"]
    np.testing.assert_array_equal(again, perm)
    assert (other != perm).any()
    assert "permutation" not in plain.info


def test_missing_mnist_names_the_directory_files_and_download(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as error:
        sequential_mnist(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "mnist") in message
    assert all(name in message for files in MNIST_FILES.values() for name in files)
    assert "https://" in message and "LYAPKIT_DATA" in message
    monkeypatch.setenv("LYAPKIT_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "elsewhere" / "mnist")):
        sequential_mnist()


def test_missing_single_mnist_file_is_named(mnist):
    root, _ = mnist
    (root / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="must contain t10k-labels-idx1-ubyte. Download"):
        sequential_mnist(root)


def test_invalid_mnist_files_give_clear_errors(mnist, rng):
    root, data = mnist
    directory = root / "mnist"
    images = directory / "train-images-idx3-ubyte"
    images.write_bytes(b"\x00\x00\x08\x09" + images.read_bytes()[4:])  # 9 dimensions
    with pytest.raises(ValueError, match="train-images-idx3-ubyte is not an IDX file|corrupt"):
        sequential_mnist(root)
    write_idx(images, data["train"][0][:, :, :27])  # wrong image size
    with pytest.raises(ValueError, match=r"does not hold MNIST images.*\(N, 28, 28\)"):
        sequential_mnist(root)
    write_idx(images, data["train"][0][:5])  # one label too many
    with pytest.raises(ValueError, match="does not hold the 5 MNIST labels"):
        sequential_mnist(root)
    write_idx(images, data["train"][0])
    write_idx(directory / "train-labels-idx1-ubyte", np.full(6, 10, np.uint8))
    with pytest.raises(ValueError, match="labels must lie in 0 … 9"):
        sequential_mnist(root)


# ----------------------------------------------------------------------------- CIFAR-10


def test_sequential_cifar10_is_grayscale_in_scan_line_order(tmp_path, rng):
    batches = write_cifar(tmp_path, rng)
    task = sequential_cifar10(tmp_path)
    assert (task.name, task.input_size, task.output_size, task.length) == ("sCIFAR10", 1, 10, 1024)
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    for (inputs, targets), parts in (
        (task.data("train"), train),
        (task.data("test"), [batches["test_batch"]]),
    ):
        data = np.concatenate([b[b"data"] for b in parts]).astype(np.float64)
        labels = sum((b[b"labels"] for b in parts), [])
        assert inputs.shape == (len(data), 1024, 1) and targets.tolist() == labels
        red, green, blue = data[:, :1024], data[:, 1024:2048], data[:, 2048:]
        gray = (0.299 * red + 0.587 * green + 0.114 * blue) / 255
        np.testing.assert_allclose(inputs[..., 0].numpy(), gray, rtol=1e-6, atol=1e-6)
    # pixel (row 3, column 7) of the first training image is step 32·3 + 7
    image = train[0][b"data"][0].reshape(3, 32, 32).astype(np.float64)
    expected = (0.299 * image[0, 3, 7] + 0.587 * image[1, 3, 7] + 0.114 * image[2, 3, 7]) / 255
    assert task.train_inputs[0, 32 * 3 + 7, 0].item() == pytest.approx(expected, abs=1e-6)
    small = sequential_cifar10(tmp_path, n_train=4, n_test=1, permuted=True)
    perm = torch.from_numpy(small.info["permutation"])
    assert torch.equal(small.train_inputs, task.train_inputs[:4, perm])


def test_missing_cifar10_names_the_directory_and_download(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        sequential_cifar10(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "test_batch" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a pickle", "is not a CIFAR-10 python batch"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8)}), "keys b'data' and b'labels'"),
        (
            pickle.dumps({b"data": np.zeros((1, 100), np.uint8), b"labels": [0]}),
            "shape \\(N, 3072\\)",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),
            "2 integer labels",
        ),
        (pickle.dumps(os.getcwd), "refusing to load"),  # a pickle that would call a function
    ],
)
def test_invalid_cifar10_batch_gives_clear_error(tmp_path, rng, content, message):
    write_cifar(tmp_path, rng)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        sequential_cifar10(tmp_path)
    assert "data_batch_3" in str(error.value)


# ----------------------------------------------------------------------------- digits


def test_sequential_digits():
    pytest.importorskip("sklearn")
    task = sequential_digits(seed=0)
    assert (task.name, task.input_size, task.output_size, task.length) == ("sDigits", 1, 10, 64)
    n_train, n_test = len(task.train_inputs), len(task.test_inputs)
    assert n_train + n_test == 1797 and n_test == math.ceil(0.25 * 1797)
    for inputs, targets in (task.data("train"), task.data("test")):
        assert inputs.min() >= 0 and inputs.max() <= 1
        assert sorted(targets.unique().tolist()) == list(range(10))
    from sklearn.datasets import load_digits

    images = torch.cat([task.train_inputs, task.test_inputs])[..., 0].double() * 16
    assert sorted(map(tuple, images.tolist())) == sorted(map(tuple, load_digits().data.tolist()))
    same, other = sequential_digits(seed=0), sequential_digits(seed=1)
    assert torch.equal(same.test_inputs, task.test_inputs)
    same.train_inputs.zero_()  # a task's tensors are its own: the data read once stays intact
    assert torch.equal(sequential_digits(seed=0).train_inputs, task.train_inputs)
    assert not torch.equal(other.test_targets, task.test_targets)
    permuted = sequential_digits(permuted=True, seed=0, permutation_seed=3)
    perm = torch.from_numpy(permuted.info["permutation"])
    assert permuted.name == "psDigits"
    assert torch.equal(permuted.train_inputs, task.train_inputs[:, perm])
    assert torch.equal(permuted.test_targets, task.test_targets)
    with pytest.raises(ValueError, match="test_fraction"):
        sequential_digits(test_fraction=1.0)


# ----------------------------------------------------------------------------- Task, loaders


def test_loader_is_seeded_and_covers_the_split():
    task = adding_problem(5, n_train=10, n_test=7, seed=0)

    def order(loader):
        return torch.cat([targets for _, targets in loader])

    assert torch.equal(
        order(task.loader(batch_size=4, seed=1)), order(task.loader(batch_size=4, seed=1))
    )
    assert not torch.equal(
        order(task.loader(batch_size=4, seed=1)), order(task.loader(batch_size=4, seed=2))
    )
    assert sorted(order(task.loader(batch_size=3)).tolist()) == sorted(task.train_targets.tolist())
    test = task.loader("test", batch_size=3)
    assert torch.equal(order(test), task.test_targets)  # not shuffled
    assert [len(x) for x, _ in test] == [3, 3, 1]
    assert [len(x) for x, _ in task.loader("test", 3, drop_last=True)] == [3, 3]
    with pytest.raises(ValueError, match="split"):
        task.loader("validation")


def test_task_checks_its_tensors():
    x = torch.zeros(4, 5, 1)
    fields = dict(
        name="t",
        input_size=1,
        output_size=3,
        loss="cross_entropy",
        readout="last",
        metric="accuracy",
        min_performance=0.5,
        test_inputs=x,
        test_targets=torch.zeros(4, dtype=torch.int64),
    )
    Task(train_inputs=x, train_targets=torch.zeros(4, dtype=torch.int64), **fields)
    with pytest.raises(ValueError, match="train_targets must be torch.int64"):
        Task(train_inputs=x, train_targets=torch.zeros(4), **fields)
    with pytest.raises(ValueError, match="train_inputs must be float32"):
        Task(train_inputs=x.double(), train_targets=torch.zeros(4, dtype=torch.int64), **fields)
    with pytest.raises(ValueError, match="metric"):
        Task(
            train_inputs=x,
            train_targets=torch.zeros(4, dtype=torch.int64),
            **{**fields, "metric": "f1"},
        )
    task = Task(train_inputs=x, train_targets=torch.zeros(4, dtype=torch.int64), **fields)
    assert task.reaches_min_performance(0.5) and not task.reaches_min_performance(0.4)
    assert "tensor" not in repr(task)


def test_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("LYAPKIT_DATA", raising=False)
    assert data_root() == data_root("~/.lyapkit/data").expanduser()
    assert str(data_root()).endswith(os.path.join(".lyapkit", "data"))
    monkeypatch.setenv("LYAPKIT_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root(tmp_path / "x") == tmp_path / "x"


# ----------------------------------------------------------------------------- registry


def test_make_task(mnist):
    root, _ = mnist
    assert set(TASKS) == {
        "adding",
        "smnist",
        "psmnist",
        "scifar10",
        "sdigits",
        "psdigits",
        "teacher_student",
    }
    made, direct = (
        make_task("adding", T=12, n_train=5, n_test=3, seed=4),
        adding_problem(12, 5, 3, 4),
    )
    assert made.name == "ADD(12)" and torch.equal(made.train_inputs, direct.train_inputs)
    assert make_task("psmnist", root=str(root)).name == "psMNIST"
    assert make_task("teacher_student", nu0=0.5, T=10, n_train=2, n_test=2).length == 10
    with pytest.raises(ValueError, match="unknown task 'mnist'; the tasks are: adding, smnist"):
        make_task("mnist")
    with pytest.raises(ValueError, match="unknown option\\(s\\) 'length'; task 'adding' takes.*T"):
        make_task("adding", length=10)
    with pytest.raises(ValueError, match="missing required option\\(s\\) 'nu0'"):
        make_task("teacher_student", T=10)
