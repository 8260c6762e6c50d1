#!/usr/bin/env python3
"""Packs the generated Python bindings and the native library into one wheel.

    python_wheel.py BINDINGS_PY LIBRARY OUT_DIR VERSION

The package `yibiao` holds the generated module as `yibiao/__init__.py` and the library
beside it (the generated code loads it from its own directory), so `pip install` of the
wheel is all an app developer does. Only the standard library is used (a wheel is a zip
with three metadata files, PEP 427), so it builds offline with no `build`/`wheel`
package. The tag is `py3-none-<platform>`: the library does not link libpython.
"""

import base64
import hashlib
import os
import sys
import sysconfig
import zipfile

NAME = "yibiao"


# Appended to the generated module. uniffi marks records and enum variants `@dataclass`
# but declares their fields only in `__init__`, so the dataclass `repr()` a REPL or a log
# shows was `Enrolment()`; this gives each one a repr with its fields.
READABLE_REPR = b"""

def _yibiao_readable_reprs():
    import dataclasses
    import inspect

    def fields_repr(self):
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        inner = ", ".join("{}={!r}".format(n, getattr(self, n, None)) for n in names)
        return "{}({})".format(type(self).__qualname__, inner)

    for top in list(globals().values()):
        if not isinstance(top, type):
            continue
        for cls in [top] + [v for v in vars(top).values() if isinstance(v, type)]:
            if dataclasses.is_dataclass(cls):
                cls.__repr__ = fields_repr


_yibiao_readable_reprs()
"""


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def main():
    bindings_py, library, out_dir, version = sys.argv[1:5]
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    tag = f"py3-none-{platform}"
    dist_info = f"{NAME}-{version}.dist-info"
    with open(os.path.join(bindings_py, "yibiao.py"), "rb") as f:
        module = f.read()
    with open(library, "rb") as f:
        native = f.read()
    files = [
        (f"{NAME}/__init__.py", module + READABLE_REPR),
        (f"{NAME}/{os.path.basename(library)}", native),
        (f"{dist_info}/METADATA", (
            "Metadata-Version: 2.1\n"
            f"Name: {NAME}\n"
            f"Version: {version}\n"
            "Summary: yibiao phone store and sync (uniffi bindings of mobile-ffi)\n"
            "Requires-Python: >=3.8\n").encode()),
        (f"{dist_info}/WHEEL", (
            "Wheel-Version: 1.0\n"
            "Generator: yibiao scripts/python_wheel.py\n"
            "Root-Is-Purelib: false\n"
            f"Tag: {tag}\n").encode()),
    ]
    record = [record_line(p, d) for p, d in files] + [f"{dist_info}/RECORD,,"]
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    os.makedirs(out_dir, exist_ok=True)
    wheel = os.path.join(out_dir, f"{NAME}-{version}-{tag}.whl")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files:
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if path.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    print(wheel)


if __name__ == "__main__":
    main()
