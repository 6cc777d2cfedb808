"""Model zoo: small, self-contained PyTorch definitions addressed by name.

``get_model("lenet5")`` builds a model; ``resolve_model(UserCode("pkg.mod:attr"))`` imports
a user model (a class or a factory function); a plain string naming code is refused (see
:mod:`accelsim.zoo.gate`). ``list_models()`` names what is here.
``build_model(spec)`` also accepts ``torchvision:NAME`` when torchvision is installed.
"""
from __future__ import annotations

from accelsim.zoo.gate import UserCode
from accelsim.zoo.registry import get_model, list_models, register, resolve_model, model_input_shape

__all__ = ["get_model", "list_models", "register", "resolve_model", "model_input_shape",
           "build_model", "UserCode"]

# The definition modules (which import PyTorch) register their models when the registry is
# first asked for one (accelsim.zoo.registry.ZOO_MODULES), not on `import accelsim.zoo`.
from accelsim.zoo.torchvision_models import build_model  # noqa: E402
