"""The usual script's Python step: whole-file gzip -9, Fernet, SHA-256, and
an upload with boto3's upload_file when S3_ENDPOINT is set."""
import gzip
import hashlib
import os
import sys

from cryptography.fernet import Fernet

src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    data = f.read()
packed = Fernet(Fernet.generate_key()).encrypt(gzip.compress(data, compresslevel=9))
digest = hashlib.sha256(packed).hexdigest()
with open(dst, "wb") as f:
    f.write(packed)
endpoint = os.environ.get("S3_ENDPOINT")
if endpoint:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint,
                      config=Config(s3={"addressing_style": "path"}))
    s3.upload_file(dst, os.environ["S3_BUCKET"], os.path.basename(dst),
                   ExtraArgs={"Metadata": {"checksum-sha256": digest}})
print(digest)
