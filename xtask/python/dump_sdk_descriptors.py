"""Write the protobuf descriptors compiled into the official Dapr Python SDK.

Imports every generated `*_pb2` module the SDK ships (the Dapr runtime protos and the
durabletask protos vendored by the workflow extension) and writes one serialized
`google.protobuf.FileDescriptorSet` holding all of their files to the path given as the
only argument. `cargo xtask proto-check` compares that set with our own protos.
"""

import importlib
import pkgutil
import sys

from google.protobuf import descriptor_pb2

ROOT_PACKAGES = ["dapr.proto", "dapr.ext.workflow._durabletask.internal"]


def sdk_modules():
    for root in ROOT_PACKAGES:
        try:
            package = importlib.import_module(root)
        except ImportError as err:
            print(f"skipping {root}: {err}", file=sys.stderr)
            continue
        for info in pkgutil.walk_packages(package.__path__, prefix=root + "."):
            if info.name.endswith("_pb2"):
                yield importlib.import_module(info.name)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: dump_sdk_descriptors.py OUTPUT")
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    seen = set()
    for module in sdk_modules():
        file_proto = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        if file_proto.name in seen:
            continue
        seen.add(file_proto.name)
        descriptor_set.file.append(file_proto)
    with open(sys.argv[1], "wb") as out:
        out.write(descriptor_set.SerializeToString())
    print(f"wrote {len(descriptor_set.file)} files", file=sys.stderr)


if __name__ == "__main__":
    main()
