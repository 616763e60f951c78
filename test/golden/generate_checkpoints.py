#!/usr/bin/python3
"""Writes the checkpoint fixtures that test/golden/checkpoints.test.ts loads.

Runs under Debian's python3-torch (`/usr/bin/python3 test/golden/generate_checkpoints.py`).
Every file is written by real PyTorch (torch.save, torch.jit.save) or, for
safetensors (the Python `safetensors` package is not in Debian), by the
spec-following writer below, which read_back.py's reader checks from the other
side. Expected values come from torch.nn modules run here.

fixtures/checkpoints/
  model.pt, model.safetensors  a model with field-held, nested, cumulative-momentum,
                               affine-free and float64 BatchNorm layers (random state)
  model.json                   its state dict values, inputs, and PyTorch's training
                               and eval outputs and running statistics
  dtypes.pt, dtypes.safetensors, dtypes.json   float32/64, float16, bfloat16, int64
  views.pt, views.json         shared storages, offsets, strides, channels-last, a Parameter
  zip64.pt                     model.pt re-packed with ZIP64 records everywhere
  legacy.pt                    the pre-1.6 format (_use_new_zipfile_serialization=False)
  torchscript.pt               torch.jit.save of a BatchNorm
  malicious.pt                 a torch-shaped zip whose pickle calls os.system
"""
import io
import json
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "checkpoints")
SEED = 20261130

# safetensors dtype names (https://github.com/huggingface/safetensors, format section).
ST_DTYPES = {
    torch.float32: ("F32", np.float32),
    torch.float64: ("F64", np.float64),
    torch.float16: ("F16", np.float16),
    torch.bfloat16: ("BF16", np.int16),  # numpy has no bfloat16: its bits as int16
    torch.int64: ("I64", np.int64),
}
ST_BY_NAME = {name: (dt, npdt) for dt, (name, npdt) in ST_DTYPES.items()}


def st_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def write_safetensors(path, tensors, metadata=None):
    """The format: u64 little-endian header length, JSON header, row-major little-endian data."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs, offset = [], 0
    for name, t in tensors.items():
        b = st_bytes(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype][0], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Reads the format strictly: header bounds, dtype sizes, and a data buffer covered exactly."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw), "header runs past the file"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", None)
    out, spans = OrderedDict(), []
    for name, info in header.items():
        dt, npdt = ST_BY_NAME[info["dtype"]]
        begin, end = info["data_offsets"]
        numel = int(np.prod(info["shape"], dtype=np.int64))
        assert end - begin == numel * np.dtype(npdt).itemsize, name
        spans.append((begin, end))
        arr = np.frombuffer(data[begin:end], dtype=np.dtype(npdt).newbyteorder("<")).astype(npdt)
        t = torch.from_numpy(arr.copy()).reshape(info["shape"])
        out[name] = t.view(torch.bfloat16) if dt == torch.bfloat16 else t
    covered = 0
    for begin, end in sorted(spans):
        assert begin == covered, "hole or overlap in the data buffer"
        covered = end
    assert covered == len(data), "bytes after the last tensor"
    return out, metadata


def values(t):
    """Flat logical-order values: floats in shortest exact form, int64 as strings (exact beyond 2^53)."""
    t = t.detach().contiguous().reshape(-1)
    if t.dtype == torch.int64:
        return [str(int(v)) for v in t.tolist()]
    if t.dtype in (torch.float16, torch.bfloat16, torch.float32):
        return [float(str(np.float32(v))) for v in t.float().numpy()]
    return [float(v) for v in t.numpy()]


def described(sd):
    return {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape), "values": values(v)} for k, v in sd.items()}


class Block(nn.Module):
    """Children held in fields, one of them a Sequential."""

    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)
        self.inner = nn.Sequential(nn.BatchNorm2d(c, momentum=None), nn.BatchNorm2d(c, affine=False))

    def forward(self, x):
        return self.inner(self.bn(x))


class Net(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.stem = nn.BatchNorm2d(c, eps=1e-3, momentum=0.3)
        self.block = Block(c)
        self.head = nn.BatchNorm1d(3, dtype=torch.float64)

    def forward(self, x):
        return self.block(self.stem(x))


def randomize(net):
    """A state nothing could guess: random parameters, running stats and counters."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.affine:
                    m.weight.copy_(torch.rand_like(m.weight) + 0.5)
                    m.bias.copy_(torch.randn_like(m.bias))
                m.running_mean.copy_(torch.randn_like(m.running_mean))
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
                m.num_batches_tracked.fill_(int(torch.randint(1, 9, ())))


def model_fixture():
    torch.manual_seed(SEED)
    c = 4
    net = Net(c)
    randomize(net)
    # A copy: state_dict() shares storage with the modules, which the forwards below move.
    sd = OrderedDict((k, v.clone()) for k, v in net.state_dict().items())
    sd._metadata = net.state_dict()._metadata
    torch.save(sd, os.path.join(OUT, "model.pt"))
    write_safetensors(os.path.join(OUT, "model.safetensors"), sd, {"format": "pt"})
    record = {"state_dict": described(sd), "metadata": {k: dict(v) for k, v in sd._metadata.items()}}

    xs = [torch.randn(3, c, 3, 2) * 2 + 1 for _ in range(3)]
    hs = [torch.randn(5, 3, dtype=torch.float64) for _ in range(2)]
    record["x"] = [values(x) for x in xs]
    record["x_shape"] = list(xs[0].shape)
    record["h"] = [values(h) for h in hs]
    record["h_shape"] = list(hs[0].shape)
    with torch.no_grad():
        net.train()
        record["train_y"] = [values(net(xs[0])), values(net(xs[1]))]
        record["train_head"] = values(net.head(hs[0]))
        net.eval()
        record["eval_y"] = values(net(xs[2]))
        record["eval_head"] = values(net.head(hs[1]))
    record["trained"] = described(net.state_dict())
    with open(os.path.join(OUT, "model.json"), "w") as f:
        json.dump(record, f)

    # The same file with ZIP64 records in every place a reader must look.
    repack_zip64(os.path.join(OUT, "model.pt"), os.path.join(OUT, "zip64.pt"))
    back = torch.load(os.path.join(OUT, "zip64.pt"), weights_only=True)
    saved = torch.load(os.path.join(OUT, "model.pt"), weights_only=True)
    assert list(back) == list(saved) and all(torch.equal(back[k], saved[k]) for k in saved), "zip64.pt does not read back in PyTorch"


def dtypes_fixture():
    torch.manual_seed(SEED + 1)
    sd = OrderedDict(
        f32=torch.randn(2, 3),
        f64=torch.randn(4, dtype=torch.float64),
        f16=(torch.randn(5) * 100).half(),
        bf16=(torch.randn(5) * 1e3).bfloat16(),
        i64=torch.tensor([2**53 + 1, -(2**62), 7, 0]),
        scalar=torch.tensor(5),
        empty=torch.zeros(0, 3),
    )
    torch.save(sd, os.path.join(OUT, "dtypes.pt"))
    write_safetensors(os.path.join(OUT, "dtypes.safetensors"), sd)
    with open(os.path.join(OUT, "dtypes.json"), "w") as f:
        json.dump(described(sd), f)


def views_fixture():
    torch.manual_seed(SEED + 2)
    base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    sd = OrderedDict(
        base=base,
        slice=base[1],  # offset 12, same storage
        row=base[0, 1],  # offset 4
        transposed=base.transpose(0, 2),  # strided: copied out
        every_other=base[:, :, ::2],
        channels_last=torch.randn(2, 3, 2, 2).to(memory_format=torch.channels_last),
        param=nn.Parameter(torch.randn(3)),
    )
    torch.save(sd, os.path.join(OUT, "views.pt"))
    expected = described(sd)
    for k, v in sd.items():
        expected[k]["storage_offset"] = v.storage_offset()
        expected[k]["stride"] = list(v.stride())
    with open(os.path.join(OUT, "views.json"), "w") as f:
        json.dump(expected, f)


def repack_zip64(src, dst):
    """Rewrites a stored zip with ZIP64 extra fields (sizes and offsets 0xFFFFFFFF) and ZIP64 end records."""
    entries = []
    with zipfile.ZipFile(src) as z:
        for info in z.infolist():
            entries.append((info.filename.encode(), z.read(info.filename)))
    out = io.BytesIO()
    central = []
    for name, data in entries:
        offset = out.tell()
        crc = zipfile.crc32(data) & 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra)))
        out.write(name + extra + data)
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                                   len(name), len(cextra), 0, 0, 0, 0, 0xFFFFFFFF) + name + cextra)
    dir_offset = out.tell()
    for c in central:
        out.write(c)
    dir_size = out.tell() - dir_offset
    end64 = out.tell()
    out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries), dir_size, dir_offset))
    out.write(struct.pack("<IIQI", 0x07064B50, 0, end64, 1))
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    with open(dst, "wb") as f:
        f.write(out.getvalue())
    with zipfile.ZipFile(dst) as z:
        assert z.testzip() is None


class FlameMomentumBatchNorm2d(nn.BatchNorm2d):
    """The structure of flame's MomentumBatchNorm2d (momentum2-teacher): a
    BatchNorm2d subclass whose schedule (total_iters, cur_iter) is plain
    attributes, so its state dict is BatchNorm2d's five keys. Only the
    structure matters for checkpoints; the forward math is checked by
    generate.py's momentum fixtures."""

    def __init__(self, num_features, eps=1e-5, momentum=1.0, affine=True, track_running_stats=True, total_iters=100):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.total_iters = total_iters
        self.cur_iter = 0


def momentum_fixture():
    torch.manual_seed(SEED + 3)
    m = FlameMomentumBatchNorm2d(4, total_iters=10)
    with torch.no_grad():
        m.weight.copy_(torch.rand(4) + 0.5)
        m.bias.copy_(torch.randn(4))
        m.running_mean.copy_(torch.randn(4))
        m.running_var.copy_(torch.rand(4) + 0.5)
    sd = m.state_dict()
    torch.save(sd, os.path.join(OUT, "momentum_flame.pt"))
    with open(os.path.join(OUT, "momentum_flame.json"), "w") as f:
        json.dump(described(sd), f)


def load_into_flame(path):
    """What a flame user does with syncbn's MomentumBatchNorm2d checkpoint: a strict load."""
    m = FlameMomentumBatchNorm2d(4)
    m.load_state_dict(torch.load(path, weights_only=True), strict=True)
    return described(m.state_dict())


class Payload:
    """What an attacker pickles: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def refusal_fixtures():
    torch.save(OrderedDict(w=torch.ones(2)), os.path.join(OUT, "legacy.pt"), _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(nn.BatchNorm1d(2)), os.path.join(OUT, "torchscript.pt"))
    # The marker path is relative: a test runs the load in a temporary directory and checks it stays empty.
    pkl = pickle.dumps(OrderedDict(w=Payload("syncbn-pwned")), protocol=2)
    with zipfile.ZipFile(os.path.join(OUT, "malicious.pt"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("malicious/data.pkl", pkl)
        z.writestr("malicious/version", "3\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    model_fixture()
    dtypes_fixture()
    views_fixture()
    momentum_fixture()
    refusal_fixtures()
    # The safetensors writer and reader above agree with each other and with torch.save's values.
    for name in ("model", "dtypes"):
        st, _ = read_safetensors(os.path.join(OUT, f"{name}.safetensors"))
        pt = torch.load(os.path.join(OUT, f"{name}.pt"), weights_only=True)
        assert list(st) == list(pt) and all(st[k].dtype == pt[k].dtype and torch.equal(st[k], pt[k]) for k in pt), name
    print(f"wrote {sorted(os.listdir(OUT))}")


if __name__ == "__main__":
    main()
