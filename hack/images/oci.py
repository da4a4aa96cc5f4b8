#!/usr/bin/env python3
"""Pack a root filesystem tarball into a one-layer OCI image layout archive.

    oci.py --ref REF --out IMAGE.tar [--rootfs ROOTFS.tar] [--add SRC:DST:MODE]...
           [--entrypoint JSON] [--cmd JSON] [--env K=V]... [--user U] [--workdir DIR]
           [--port 8080/tcp]... [--volume DIR]... [--stop-signal SIG] [--exclude PATTERN]...

The archive holds oci-layout, index.json and blobs/sha256/* (layer, config, manifest), the
layout `ctr images import` (containerd >= 1.6) reads. index.json names the image with the
full REF in both `io.containerd.image.name` (what containerd uses) and
`org.opencontainers.image.ref.name`, so the import needs no --base-name.

Output is deterministic for a given input: entries sorted by name, mtimes clamped to
SOURCE_DATE_EPOCH, owner names dropped (numeric ids only), gzip without a timestamp.
Only the Python 3 standard library is used.
"""

import argparse
import datetime
import fnmatch
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Debian architecture -> OCI (GOARCH) architecture and variant.
ARCHES = {
    "amd64": ("amd64", None),
    "arm64": ("arm64", "v8"),
    "armhf": ("arm", "v7"),
    "i386": ("386", None),
    "ppc64el": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}

# Never part of an image: the runtime mounts its own /dev, /proc and /sys.
ALWAYS_EXCLUDE = ["dev/*", "proc/*", "sys/*"]


class Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to `out`."""

    def __init__(self, out):
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self):
        return True

    def write(self, b):
        self.sha.update(b)
        self.size += len(b)
        if self.out is not None:
            self.out.write(b)
        return len(b)


def norm(name):
    """Member name without a leading ./ or /; "" for the root directory."""
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "" if name == "." else name


def excluded(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def clean(info, epoch):
    """Drop what differs between otherwise identical builds (owner names, late mtimes,
    atime/ctime pax records); keep ids, modes and extended attributes (file capabilities)."""
    info.uname = info.gname = ""
    info.mtime = min(int(info.mtime), epoch)
    info.pax_headers = {k: v for k, v in info.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    return info


def write_layer(rootfs, adds, excludes, epoch, out):
    """Write the gzip'ed layer tar to `out`; return (diff_id, digest, size)."""
    compressed = Hashing(out)
    raw = Hashing(None)
    gz = gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6)

    class Tee(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            raw.write(b)
            gz.write(b)
            return len(b)

    src = tarfile.open(rootfs, "r:*") if rootfs else None
    members = {}
    if src:
        for m in src.getmembers():
            name = norm(m.name)
            if not name or excluded(name, excludes):
                continue
            members[name] = m
    added = {}
    for add in adds:
        srcpath, dst, mode = add
        dst = norm(dst)
        added[dst] = (srcpath, int(mode, 8))
        members.pop(dst, None)
        # Parent directories the rootfs lacks (an empty base has none).
        parts = dst.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in members and d not in added:
                added[d] = (None, 0o755)

    # Hard links point at a member that sorting may move after them: in each group of
    # names sharing one file, the first name in sorted order carries the data.
    group_of = {}
    for name, m in members.items():
        if m.islnk():
            target = norm(m.linkname)
            while target in members and members[target].islnk():
                target = norm(members[target].linkname)
            if target not in members or not members[target].isreg():
                sys.exit(f"oci.py: hard link {name} -> {m.linkname}: no such regular file")
            group_of[name] = target
            group_of.setdefault(target, target)
    first_in_group = {}

    out_tar = tarfile.open(fileobj=Tee(), mode="w|", format=tarfile.PAX_FORMAT)
    for name in sorted(set(members) | set(added)):
        if name in added:
            path, mode = added[name]
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, epoch
            if path is None:
                info.type = tarfile.DIRTYPE
                out_tar.addfile(info)
            else:
                info.size = os.path.getsize(path)
                with open(path, "rb") as f:
                    out_tar.addfile(info, f)
            continue
        m = members[name]
        info = clean(m, epoch)
        info.name = name
        group = group_of.get(name)
        if group is not None:
            if group in first_in_group:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first_in_group[group], 0
                out_tar.addfile(info)
                continue
            first_in_group[group] = name
            data_member = members[group]
            info.type, info.linkname, info.size = tarfile.REGTYPE, "", data_member.size
            out_tar.addfile(info, src.extractfile(data_member))
            continue
        if m.isreg():
            out_tar.addfile(info, src.extractfile(m))
        else:
            if m.issym():
                info.linkname = m.linkname
            out_tar.addfile(info)
    out_tar.close()
    gz.close()
    if src:
        src.close()
    return "sha256:" + raw.sha.hexdigest(), "sha256:" + compressed.sha.hexdigest(), compressed.size


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def add_bytes(tar, name, data, epoch, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), epoch, mode
    tar.addfile(info, io.BytesIO(data))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="full image reference, e.g. localhost/x/y:1")
    p.add_argument("--out", required=True, help="OCI layout archive to write")
    p.add_argument("--rootfs", help="root filesystem tarball (omit for an empty base)")
    p.add_argument("--add", action="append", default=[], metavar="SRC:DST:MODE",
                   help="add a root-owned file, e.g. build/pause:/pause:0755")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="drop rootfs entries matching this fnmatch pattern (no leading /)")
    p.add_argument("--arch", default="amd64", help="Debian architecture (dpkg --print-architecture)")
    p.add_argument("--entrypoint", help="JSON array")
    p.add_argument("--cmd", help="JSON array")
    p.add_argument("--env", action="append", default=[], metavar="K=V")
    p.add_argument("--user")
    p.add_argument("--workdir")
    p.add_argument("--port", action="append", default=[], metavar="PORT/PROTO")
    p.add_argument("--volume", action="append", default=[])
    p.add_argument("--stop-signal")
    p.add_argument("--created-by", default="hack/images.sh")
    a = p.parse_args()

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if a.arch not in ARCHES:
        sys.exit(f"oci.py: unknown architecture {a.arch}")
    arch, variant = ARCHES[a.arch]
    adds = []
    for spec in a.add:
        parts = spec.rsplit(":", 2)
        if len(parts) != 3:
            sys.exit(f"oci.py: --add wants SRC:DST:MODE, got {spec}")
        adds.append(parts)

    outdir = os.path.dirname(os.path.abspath(a.out))
    with tempfile.NamedTemporaryFile(dir=outdir, prefix=".layer.", delete=True) as layer:
        diff_id, layer_digest, layer_size = write_layer(
            a.rootfs, adds, ALWAYS_EXCLUDE + a.exclude, epoch, layer)
        layer.flush()

        config = {}
        if a.user:
            config["User"] = a.user
        if a.env:
            config["Env"] = a.env
        if a.entrypoint:
            config["Entrypoint"] = json.loads(a.entrypoint)
        if a.cmd:
            config["Cmd"] = json.loads(a.cmd)
        if a.workdir:
            config["WorkingDir"] = a.workdir
        if a.port:
            config["ExposedPorts"] = {port: {} for port in a.port}
        if a.volume:
            config["Volumes"] = {v: {} for v in a.volume}
        if a.stop_signal:
            config["StopSignal"] = a.stop_signal
        image_config = {
            "created": created,
            "architecture": arch,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "created_by": a.created_by}],
        }
        if variant:
            image_config["variant"] = variant
        config_bytes = dumps(image_config)
        config_digest, config_size = blob(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": layer_size}],
        }
        manifest_bytes = dumps(manifest)
        manifest_digest, manifest_size = blob(manifest_bytes)
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [{
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "platform": platform,
                "annotations": {
                    "io.containerd.image.name": a.ref,
                    "org.opencontainers.image.ref.name": a.ref,
                },
            }],
        }

        # Written next to OUT and renamed by the caller's tmp-then-mv; index.json comes
        # early so `tar --occurrence -xOf OUT index.json` finds it without reading the layer.
        with open(a.out, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            add_bytes(tar, "oci-layout", dumps({"imageLayoutVersion": "1.0.0"}), epoch)
            add_bytes(tar, "index.json", dumps(index), epoch)
            for d in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
                tar.addfile(info)
            add_bytes(tar, "blobs/sha256/" + manifest_digest[7:], manifest_bytes, epoch)
            add_bytes(tar, "blobs/sha256/" + config_digest[7:], config_bytes, epoch)
            info = tarfile.TarInfo("blobs/sha256/" + layer_digest[7:])
            info.size, info.mtime, info.mode = layer_size, epoch, 0o644
            layer.seek(0)
            tar.addfile(info, layer)
    print(manifest_digest)


if __name__ == "__main__":
    main()
