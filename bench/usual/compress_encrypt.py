"""The usual script's Python step: whole-file gzip -9, Fernet, SHA-256."""
import gzip
import hashlib
import sys

from cryptography.fernet import Fernet

src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    data = f.read()
packed = Fernet(Fernet.generate_key()).encrypt(gzip.compress(data, compresslevel=9))
digest = hashlib.sha256(packed).hexdigest()
with open(dst, "wb") as f:
    f.write(packed)
print(digest)
