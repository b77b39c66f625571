"""An independent Azure Blob client for Ferry's tests: Microsoft's own SDK
(azure-storage-blob), nothing of Ferry's and nothing of OpenDAL's, so a test that
reads back what Ferry wrote does not trust the code under test.

    azblob.py --endpoint URL --account NAME --key KEY COMMAND ...

takes object_cli.py's commands (a bucket is a container) and one more:

      account-sas   prints an account SAS token granting everything for a day
"""

import datetime
import sys

import object_cli

try:
    from azure.storage.blob import (
        AccountSasPermissions,
        BlobServiceClient,
        ContentSettings,
        ResourceTypes,
        generate_account_sas,
    )
except ImportError as error:
    sys.exit(
        f"azblob.py: the Python package azure-storage-blob is missing from {sys.executable} "
        f"({error}); run deploy/test.sh, which installs it"
    )


class Store:
    def __init__(self, args):
        self.account, self.key = args.account, args.key
        self.service = BlobServiceClient(
            account_url=args.endpoint,
            credential={"account_name": args.account, "account_key": args.key},
        )

    def create_bucket(self, container):
        self.service.create_container(container)

    def upload(self, container, key, file, content_type, metadata):
        settings = ContentSettings(content_type=content_type) if content_type else None
        with open(file, "rb") as data:
            self.service.get_blob_client(container, key).upload_blob(
                data, overwrite=True, content_settings=settings, metadata=metadata
            )

    def delete(self, container, key):
        self.service.get_blob_client(container, key).delete_blob()

    def list(self, container, prefix):
        client = self.service.get_container_client(container)
        return (blob.name for blob in client.list_blobs(name_starts_with=prefix))

    def download(self, container, key, path):
        download = self.service.get_blob_client(container, key).download_blob()
        with open(path, "wb") as out:
            download.readinto(out)
        props = download.properties
        return props.size, props.content_settings.content_type, props.metadata


def account_sas(store, _args):
    print(
        generate_account_sas(
            account_name=store.account,
            account_key=store.key,
            resource_types=ResourceTypes(service=True, container=True, object=True),
            permission=AccountSasPermissions(
                read=True, write=True, delete=True, list=True, add=True, create=True
            ),
            expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1),
        )
    )


if __name__ == "__main__":
    object_cli.main(
        __doc__.splitlines()[0],
        [
            ("--endpoint", "the account's blob endpoint"),
            ("--account", "the account name"),
            ("--key", "the account key"),
        ],
        Store,
        [("account-sas", account_sas)],
    )
