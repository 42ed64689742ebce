#!/usr/bin/env python3
"""Write reduced copies of botocore service models into OUTDIR.

pier's codecs are driven by AWS's own service models. This takes, for each
service named, the newest model of the newest botocore found on the machine
(the pip-installed one that comes with the AWS CLI v1, else Debian's awscli),
drops the documentation and writes OUTDIR/<service>.json.
"""
import glob, gzip, json, os, sys


def botocore_data_dirs():
    dirs = []
    try:
        import botocore
        dirs.append(os.path.join(os.path.dirname(botocore.__file__), "data"))
    except ImportError:
        pass
    dirs += glob.glob("/usr/lib/python3/dist-packages/awscli/botocore/data")
    dirs += glob.glob("/usr/local/lib/python3*/site-packages/botocore/data")
    dirs += glob.glob("/root/.pyenv/versions/*/lib/python3*/site-packages/botocore/data")
    return [d for d in dirs if os.path.isdir(d)]


def load(path):
    if path.endswith(".gz"):
        with gzip.open(path, "rt") as f:
            return json.load(f)
    with open(path) as f:
        return json.load(f)


def newest_model(service):
    best = None
    for data in botocore_data_dirs():
        for version_dir in glob.glob(os.path.join(data, service, "*")):
            for name in ("service-2.json.gz", "service-2.json"):
                path = os.path.join(version_dir, name)
                if os.path.exists(path):
                    key = os.path.basename(version_dir)
                    if best is None or key > best[0]:
                        best = (key, path)
                    break
    if best is None:
        sys.exit(f"gen_models: no botocore model for {service}")
    return load(best[1])


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items()
                if k not in ("documentation", "documentationUrl", "examples")}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for service in sys.argv[2:]:
        model = strip(newest_model(service))
        with open(os.path.join(out, service + ".json"), "w") as f:
            json.dump(model, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
