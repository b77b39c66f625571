"""The command line both independent clients share (azblob.py, gcs.py): the same
commands on Azure containers and GCS buckets, so tests/src/clients.rs drives either
the same way. Each client supplies a store with create_bucket, upload, delete,
list (key order) and download; every command prints nothing on success unless it
says otherwise, and exits non-zero with the service's error on failure.

    CLIENT CONNECTION... COMMAND ...
      create-bucket BUCKET
      upload BUCKET OBJECT FILE [--content-type TYPE] [--metadata JSON]
      delete BUCKET OBJECT
      download-all BUCKET PREFIX INTO_DIR   (numbered files plus manifest.json)
"""

import argparse
import json
import os


def download_all(store, args):
    """Writes each object under the prefix to a numbered file in INTO_DIR (keys need
    not be valid file names) and describes them in INTO_DIR/manifest.json."""
    manifest = []
    for n, key in enumerate(store.list(args.bucket, args.prefix)):
        file = f"{n:06}"
        size, content_type, metadata = store.download(
            args.bucket, key, os.path.join(args.into, file)
        )
        manifest.append(
            {
                "key": key,
                "file": file,
                "size": size,
                "content_type": content_type,
                "metadata": dict(metadata or {}),
            }
        )
    with open(os.path.join(args.into, "manifest.json"), "w") as out:
        json.dump(manifest, out)


def upload(store, args):
    metadata = json.loads(args.metadata) if args.metadata else None
    store.upload(args.bucket, args.object, args.file, args.content_type, metadata)


def main(description, connection, open_store, extra_commands=()):
    """Parses the command line and runs its command on open_store(args).

    connection lists the (flag, help) pairs that connect the client (the commands'
    positional arguments must not share their names); extra_commands
    lists (name, run(store, args)) pairs of commands without arguments."""
    parser = argparse.ArgumentParser(description=description)
    for flag, help in connection:
        parser.add_argument(flag, required=True, help=help)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, run, *positional):
        sub = commands.add_parser(name)
        for arg in positional:
            sub.add_argument(arg)
        sub.set_defaults(run=run)
        return sub

    command("create-bucket", lambda store, a: store.create_bucket(a.bucket), "bucket")
    up = command("upload", upload, "bucket", "object", "file")
    up.add_argument("--content-type")
    up.add_argument("--metadata", help="a JSON object of user metadata")
    command("delete", lambda store, a: store.delete(a.bucket, a.object), "bucket", "object")
    command("download-all", download_all, "bucket", "prefix", "into")
    for name, run in extra_commands:
        command(name, run)

    args = parser.parse_args()
    args.run(open_store(args), args)
