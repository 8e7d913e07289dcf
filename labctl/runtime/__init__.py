"""Node runtimes. `DockerRuntime` is the one we have; the interface is `Runtime`."""

from .base import InjectedFile, LabRuntimeError, NodeInfo, NodeSpec, Runtime
from .docker_runtime import DockerRuntime, docker_client

__all__ = [
    "DockerRuntime",
    "InjectedFile",
    "LabRuntimeError",
    "NodeInfo",
    "NodeSpec",
    "Runtime",
    "docker_client",
]
