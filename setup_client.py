"""Fetch the socket.io-client browser bundle that tgext.socketio serves.

The bundle is never committed to the repository. This build-time helper (it is
not part of the installed package) takes the version and the sha512 integrity
of socket.io-client that ``package-lock.json`` pins, gets that tarball from the
npm registry (``npm pack socket.io-client@<version>`` in a temporary folder;
without npm on PATH, an HTTPS download from the registry), refuses it unless
its sha512 matches the lockfile, and only then extracts::

    package/dist/socket.io.js       package/dist/socket.io.js.map
    package/dist/socket.io.min.js   package/dist/socket.io.min.js.map
    package/LICENSE                 (as socket.io.LICENSE)

into ``tgext/socketio/static/`` (git-ignored package data), beside
``socket.io-client.json``, which records the version, the integrity and each
file's sha256. When the files there already match the lockfile's version and
integrity (an unpacked sdist carries them), nothing is fetched: a wheel builds
from the sdist offline.

setup.py runs it before ``build_py`` and ``sdist``; ``make venv`` runs it after
``pip install -e``. By hand, in a checkout::

    python setup_client.py          # fetch unless up to date
    python setup_client.py --force  # fetch again
    python setup_client.py --check  # exit 1 unless up to date (no network)
"""

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LOCKFILE = os.path.join(HERE, "package-lock.json")
STATIC_DIR = os.path.join(HERE, "tgext", "socketio", "static")
PACKAGE = "socket.io-client"
RECORD = PACKAGE + ".json"
REGISTRY = "https://registry.npmjs.org"
#: tarball member -> file name in STATIC_DIR
MEMBERS = {
    "package/dist/socket.io.js": "socket.io.js",
    "package/dist/socket.io.js.map": "socket.io.js.map",
    "package/dist/socket.io.min.js": "socket.io.min.js",
    "package/dist/socket.io.min.js.map": "socket.io.min.js.map",
    "package/LICENSE": "socket.io.LICENSE",
}
FIX = "run `python setup_client.py` in the tgext.socketio checkout"


class ClientFetchError(Exception):
    """The bundle could not be fetched, verified or extracted."""


def locked_version(lockfile=LOCKFILE):
    """Return ``(version, integrity)`` of socket.io-client in ``lockfile``."""
    try:
        with open(lockfile, encoding="utf-8") as lock:
            entry = json.load(lock)["packages"]["node_modules/" + PACKAGE]
        return entry["version"], entry["integrity"]
    except (OSError, ValueError, KeyError) as error:
        raise ClientFetchError(
            "cannot read the pinned %s from %s (%s: %s); restore it from git "
            "(`git checkout package-lock.json`) or run `npm install`"
            % (PACKAGE, lockfile, type(error).__name__, error)
        ) from error


def check_integrity(data, integrity, source="the tarball"):
    """Raise ``ClientFetchError`` unless ``data`` matches the sha512 SRI."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise ClientFetchError(
            "package-lock.json pins %s with %r: only sha512 integrity is "
            "accepted; regenerate the lockfile with `npm install`"
            % (PACKAGE, integrity)
        )
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if actual != expected:
        raise ClientFetchError(
            "%s does not match package-lock.json: expected sha512-%s, got "
            "sha512-%s; nothing was extracted. The download was altered or the "
            "lockfile is wrong: fetch again (`python setup_client.py --force`) "
            "or regenerate the lockfile (`npm install`)" % (source, expected, actual)
        )


def download(version, workdir):
    """The bytes of the registry's tarball of socket.io-client ``version``."""
    spec = "%s@%s" % (PACKAGE, version)
    npm = shutil.which("npm")
    if npm is not None:
        result = subprocess.run(
            [npm, "pack", spec, "--silent", "--no-fund", "--no-audit"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
        )
        tarball = os.path.join(workdir, "%s-%s.tgz" % (PACKAGE, version))
        if result.returncode != 0 or not os.path.exists(tarball):
            raise ClientFetchError(
                "`npm pack %s` failed (exit status %s): %s; check the network "
                "and the npm registry setting (`npm config get registry`)"
                % (spec, result.returncode, result.stderr.strip())
            )
        with open(tarball, "rb") as tgz:
            return tgz.read()
    url = "%s/%s/-/%s-%s.tgz" % (REGISTRY, PACKAGE, PACKAGE, version)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError as error:
        raise ClientFetchError(
            "downloading %s failed (%s); check the network, or install npm"
            % (url, error)
        ) from error


def extract(data, version, integrity, static_dir=STATIC_DIR):
    """Write the bundle's files from tarball ``data`` and the record.

    ``data`` must have passed ``check_integrity`` already. The files are
    written beside ``static_dir`` first and moved in place once all are there.
    """
    files = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member, name in MEMBERS.items():
                handle = tar.extractfile(member)
                if handle is None:
                    raise KeyError(member)
                files[name] = handle.read()
    except (tarfile.TarError, KeyError, OSError) as error:
        raise ClientFetchError(
            "the %s %s tarball lacks %s (%s); is package-lock.json pinning a "
            "4.x version?" % (PACKAGE, version, error, type(error).__name__)
        ) from error
    record = {
        "name": PACKAGE,
        "version": version,
        "integrity": integrity,
        "files": {
            name: hashlib.sha256(body).hexdigest() for name, body in files.items()
        },
    }
    files[RECORD] = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    parent = os.path.dirname(os.path.abspath(static_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".static-", dir=parent)
    try:
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide it from other users
        for name, body in files.items():
            with open(os.path.join(staging, name), "wb") as out:
                out.write(body)
        shutil.rmtree(static_dir, ignore_errors=True)
        os.replace(staging, static_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record


def recorded(static_dir=STATIC_DIR):
    """The record of the files in ``static_dir`` if they are all intact, else None."""
    try:
        with open(os.path.join(static_dir, RECORD), encoding="utf-8") as record_file:
            record = json.load(record_file)
        for name in MEMBERS.values():
            with open(os.path.join(static_dir, name), "rb") as bundle_file:
                if (
                    hashlib.sha256(bundle_file.read()).hexdigest()
                    != record["files"][name]
                ):
                    return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def ensure_client(static_dir=STATIC_DIR, lockfile=LOCKFILE, force=False, log=None):
    """Fetch, verify and extract the pinned bundle unless already there.

    Returns the record. Without a lockfile (an unpacked sdist always has one)
    intact files are kept as recorded.
    """
    say = log or (lambda message: None)
    current = recorded(static_dir)
    if current is not None and not force and not os.path.exists(lockfile):
        return current
    version, integrity = locked_version(lockfile)
    if (
        current is not None
        and not force
        and (current.get("version"), current.get("integrity")) == (version, integrity)
    ):
        return current
    say("fetching %s %s from the npm registry into %s" % (PACKAGE, version, static_dir))
    with tempfile.TemporaryDirectory(prefix="socketio-client-") as workdir:
        data = download(version, workdir)
    check_integrity(data, integrity, "the %s %s tarball" % (PACKAGE, version))
    record = extract(data, version, integrity, static_dir)
    say("%s %s is in %s" % (PACKAGE, version, static_dir))
    return record


def main(argv=None):
    """Command line: fetch (``--force``: again) or ``--check`` the bundle."""
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--force"], ["--check"]):
        sys.stderr.write("usage: python setup_client.py [--force | --check]\n")
        return 2
    try:
        if args == ["--check"]:
            version, integrity = locked_version()
            current = recorded()
            if current is None or current.get("integrity") != integrity:
                sys.stderr.write(
                    "%s %s is not in %s: %s\n" % (PACKAGE, version, STATIC_DIR, FIX)
                )
                return 1
            return 0
        # quiet when up to date (make venv runs it every time)
        ensure_client(force=args == ["--force"], log=report)
    except ClientFetchError as error:
        sys.stderr.write("setup_client.py: %s\n" % error)
        return 1
    return 0


def report(message):
    """Write one line of progress to stderr (``ensure_client``'s ``log``)."""
    sys.stderr.write(message + "\n")


if __name__ == "__main__":
    sys.exit(main())
