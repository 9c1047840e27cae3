#!/usr/bin/env python3
"""Random and mutated files into tools/mflow_np.py, as tests/fuzz_parsers.rs does for the CLI's
readers: damaged checkpoints (bytes, cuts, header lengths, crafted headers and metadata, NaN
parameters) and damaged arrays (NPY headers claiming 2^40 rows, wrong dtypes, NaN, CSV
text), from a fixed seed. Every case must either succeed with finite numbers or exit non-zero
with a message naming the file or flag, and never with a traceback. Outputs never replace
inputs.

    python3 tests/fuzz_mflow_np.py MODEL.safetensors DATA.npy [--cases N]

Run by tests/tabular.rs (the README's test command), which trains MODEL on DATA first.
"""
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
from contextlib import redirect_stderr, redirect_stdout

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import mflow_np  # noqa: E402
import numpy as np  # noqa: E402


def run(argv):
    """mflow_np's command line in this process: (exit status, stdout, stderr); an exception
    other than SystemExit escaping is a failure of the module, reported as status None."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            mflow_np.main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        return None, out.getvalue(), traceback.format_exc()
    return code, out.getvalue(), err.getvalue()


def mutate(good, r):
    b = bytearray(good)
    kind = r.randrange(5)
    if kind == 0:
        for _ in range(r.randrange(1, 8)):
            if b:
                b[r.randrange(len(b))] = r.randrange(256)
    elif kind == 1:
        del b[r.randrange(len(b) + 1):]
    elif kind == 2:
        i = r.randrange(len(b) + 1)
        b[i:i] = bytes(r.randrange(256) for _ in range(r.randrange(1, 64)))
    elif kind == 3:
        i = r.randrange(min(len(b), 24) or 1)
        b[i:i + 4] = b"\xff\xff\xff\xff"
    else:
        b = bytearray(r.randrange(256) for _ in range(r.randrange(300)))
    return bytes(b)


def safetensors(header, body):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body


def crafted_models(good, r):
    """Well-framed checkpoints with hostile contents."""
    n = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8:8 + n])
    body = good[8 + n:]
    meta = header["__metadata__"]
    cases = []
    for key, value in [("format", "other"), ("config", "not json"), ("config", json.dumps({"d": 2})),
                       ("standardize", json.dumps({"mean": [0.0], "std": [1.0]})),
                       ("standardize", json.dumps({"mean": [0.0, 0.0], "std": [0.0, -1.0]}))]:
        h = json.loads(json.dumps(header))
        h["__metadata__"][key] = value
        cases.append(("metadata %s" % key, safetensors(h, body)))
    for field, value in [("d", 1 << 40), ("b", -1), ("blocks", 0), ("depth", 10 ** 6), ("hidden", 0)]:
        h = json.loads(json.dumps(header))
        c = json.loads(meta["config"])
        c[field] = value
        h["__metadata__"]["config"] = json.dumps(c)
        cases.append(("config %s=%s" % (field, value), safetensors(h, body)))
    name = r.choice([k for k in header if k != "__metadata__"])
    for what, edit in [("shape", lambda i: i.update(shape=[1 << 40, 4])), ("offsets", lambda i: i.update(data_offsets=[0, 1 << 40])),
                       ("dtype", lambda i: i.update(dtype="I8"))]:
        h = json.loads(json.dumps(header))
        edit(h[name])
        cases.append(("tensor %s %s" % (name, what), safetensors(h, body)))
    # NaN parameters: a diverged model.
    b = bytearray(body)
    info = header[name]
    if info["dtype"] == "F32" and info["data_offsets"][1] > info["data_offsets"][0]:
        b[info["data_offsets"][0]:info["data_offsets"][0] + 4] = struct.pack("<f", float("nan"))
        cases.append(("NaN in %s" % name, safetensors(header, bytes(b))))
    return cases


def npy(header_dict, body, version=1):
    h = repr(header_dict).encode()
    if version == 1:
        pre = b"\x93NUMPY\x01\x00"
        h += b" " * ((-(len(pre) + 2 + len(h) + 1)) % 64) + b"\n"
        return pre + struct.pack("<H", len(h)) + h + body
    pre = b"\x93NUMPY\x02\x00"
    h += b" " * ((-(len(pre) + 4 + len(h) + 1)) % 64) + b"\n"
    return pre + struct.pack("<I", len(h)) + h + body


def crafted_arrays(good_x):
    d = good_x.shape[1]
    body = good_x.astype("<f8").tobytes()
    nan = good_x.copy()
    nan[1, 0] = np.nan
    return [
        ("2^40 rows", npy({"descr": "<f8", "fortran_order": False, "shape": (1 << 40, d)}, body)),
        ("truncated v2", npy({"descr": "<f8", "fortran_order": False, "shape": (len(good_x), d)}, body[:-8], 2)),
        ("int dtype", npy({"descr": "<i8", "fortran_order": False, "shape": (len(good_x), d)}, body)),
        ("object dtype", npy({"descr": "|O", "fortran_order": False, "shape": (1, d)}, b"\0" * 8 * d)),
        ("1-D", npy({"descr": "<f8", "fortran_order": False, "shape": (len(body) // 8,)}, body)),
        ("wrong D", npy({"descr": "<f8", "fortran_order": False, "shape": (len(body) // 8, 1)}, body)),
        ("no rows", npy({"descr": "<f8", "fortran_order": False, "shape": (0, d)}, b"")),
        ("NaN", npy({"descr": "<f8", "fortran_order": False, "shape": nan.shape}, nan.astype("<f8").tobytes())),
        ("version 9", b"\x93NUMPY\x09\x00" + body[:32]),
    ]


def check(case, code, out, err, names):
    if code is None:
        raise AssertionError("%s: traceback\n%s" % (case, err))
    if code == 0:
        # Success is fine only with finite figures.
        if "NaN" in out or "Infinity" in out:
            raise AssertionError("%s: exit 0 with non-finite output: %s" % (case, out))
        return
    if "Traceback" in err or not err.startswith("error: "):
        raise AssertionError("%s: exit %s without a clean message:\n%s" % (case, code, err))
    if not any(n in err for n in names):
        raise AssertionError("%s: the message names none of %s:\n%s" % (case, names, err))


def main(argv):
    model, data = argv[0], argv[1]
    cases = int(argv[argv.index("--cases") + 1]) if "--cases" in argv else 400
    r = random.Random(1)
    good_model = open(model, "rb").read()
    good_x = np.load(data)
    tmp = tempfile.mkdtemp(prefix="mflow-np-fuzz-")
    m, x = os.path.join(tmp, "m.safetensors"), os.path.join(tmp, "x.npy")
    ran = 0

    def eval_case(case, model_bytes, data_bytes, names, data_name="x.npy"):
        nonlocal ran
        xp = os.path.join(tmp, data_name)
        open(m, "wb").write(model_bytes)
        open(xp, "wb").write(data_bytes)
        code, out, err = run(["eval", "--model", m, "--data", xp, "--samples", "4"])
        check(case, code, out, err, names)
        ran += 1

    good_data = open(data, "rb").read()
    for i in range(cases):
        eval_case("mutated model %d" % i, mutate(good_model, r), good_data, [m])
        eval_case("mutated data %d" % i, good_model, mutate(good_data, r), [x, "--samples"])
    for case, b in crafted_models(good_model, r):
        eval_case(case, b, good_data, [m])
    for case, b in crafted_arrays(good_x):
        eval_case(case, good_model, b, [x])
    for case, text in [("csv text", b"a,b\n1,x\n"), ("csv header only", b"x1,x2\n"), ("csv ragged", b"1,2\n3\n")]:
        eval_case(case, good_model, text, [os.path.join(tmp, "x.csv")], data_name="x.csv")
    # Bad sizes are refused before allocating.
    open(m, "wb").write(good_model)
    open(x, "wb").write(good_data)
    for argv, flag in [(["eval", "--model", m, "--data", x, "--samples", str(1 << 40)], "--samples"),
                       (["sample", "--model", m, "--n", str(1 << 40), "--out", os.path.join(tmp, "s.npy")], "--n"),
                       (["sample", "--model", m, "--n", "0", "--out", os.path.join(tmp, "s.npy")], "--n")]:
        code, out, err = run(argv)
        check(" ".join(argv[:1] + [flag]), code, out, err, [flag])
        assert code != 0, argv
        ran += 1
    # Outputs never replace an input: not the model, not the data, whatever their format.
    for argv, victim in [(["eval", "--model", m, "--data", x, "--out", x], x),
                         (["eval", "--model", m, "--data", x, "--out", os.path.join(tmp, ".", "x.npy")], x),
                         (["sample", "--model", m, "--n", "5", "--out", m + ".npy"], None)]:
        before = open(victim, "rb").read() if victim else None
        if victim is None:
            os.link(m, m + ".npy")  # another name of the model itself
            before = open(m, "rb").read()
            victim = m
        code, out, err = run(argv)
        assert code != 0 and "reads" in err, (argv, code, err)
        assert open(victim, "rb").read() == before, "%s was replaced" % victim
        ran += 1
    # The same as separate processes: an error leaves no traceback on stderr.
    p = subprocess.run([sys.executable, os.path.join(os.path.dirname(mflow_np.__file__), "mflow_np.py"), "eval",
                        "--model", os.path.join(tmp, "missing.safetensors"), "--data", x],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "missing.safetensors" in p.stderr, p.stderr
    shutil.rmtree(tmp)
    print("%d passed, 0 failed" % (ran + 1))


if __name__ == "__main__":
    main(sys.argv[1:])
