"""An independent Google Cloud Storage client for Ferry's tests: Google's own SDK
(google-cloud-storage) with anonymous credentials, nothing of Ferry's and nothing
of OpenDAL's, so a test that reads back what Ferry wrote does not trust the code
under test.

    gcs.py --endpoint URL COMMAND ...

takes object_cli.py's commands.
"""

import os
import sys

import object_cli

try:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
except ImportError as error:
    sys.exit(
        f"gcs.py: the Python package google-cloud-storage is missing from {sys.executable} "
        f"({error}); run deploy/test.sh, which installs it"
    )


class Store:
    def __init__(self, args):
        # The SDK sends every request to STORAGE_EMULATOR_HOST when it is set, the
        # documented way to aim it at an emulator.
        os.environ["STORAGE_EMULATOR_HOST"] = args.endpoint
        self.client = storage.Client(project="ferry-tests", credentials=AnonymousCredentials())

    def create_bucket(self, bucket):
        self.client.create_bucket(bucket)

    def upload(self, bucket, key, file, content_type, metadata):
        blob = self.client.bucket(bucket).blob(key)
        blob.metadata = metadata
        blob.upload_from_filename(file, content_type=content_type)

    def delete(self, bucket, key):
        self.client.bucket(bucket).blob(key).delete()

    def list(self, bucket, prefix):
        return (blob.name for blob in self.client.list_blobs(bucket, prefix=prefix))

    def download(self, bucket, key, path):
        blob = self.client.bucket(bucket).get_blob(key)
        blob.download_to_filename(path)
        return blob.size, blob.content_type, blob.metadata


if __name__ == "__main__":
    object_cli.main(
        __doc__.splitlines()[0],
        [("--endpoint", "the emulator's address, http://HOST:PORT")],
        Store,
    )
