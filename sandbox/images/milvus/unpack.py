"""Unpack the real Milvus standalone binary + libs from PyPI's `milvus` wheel.

The wheel ships milvus/data/bin/*.lzma; its `milvus-server` wrapper decompresses them into
<data dir>/bin on every start (skipped when <file>.lzma.md5 matches). Done here once, at
image build time, so the binary is in the image and not in the data volume.

usage: python3 unpack.py WHEEL SHA256 DEST
"""
import hashlib
import lzma
import os
import sys
import zipfile

wheel, want, dest = sys.argv[1:4]
with open(wheel, 'rb') as f:
    have = hashlib.sha256(f.read()).hexdigest()
if have != want:
    sys.exit(f'{wheel}: sha256 {have}, want {want}')
os.makedirs(os.path.join(dest, 'bin'), exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith('milvus/data/bin/') and name.endswith('.lzma'):
            out = os.path.join(dest, 'bin', os.path.basename(name)[:-5])
            with z.open(name) as raw, lzma.open(raw) as src, open(out, 'wb') as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.chmod(out, 0o755)
        elif name == 'milvus/data/config.yaml.template':
            with open(os.path.join(dest, 'config.yaml.template'), 'wb') as dst:
                dst.write(z.read(name))
