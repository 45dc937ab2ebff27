"""Container names: Docker's rules for given names, and generated "adjective_creature" ones."""

from __future__ import annotations

import random
import re

from shoal.errors import InvalidArgument

NAME_PATTERN = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_ADJECTIVES = (
    "agile", "amber", "bold", "brave", "bright", "calm", "clever", "cool", "crisp", "deep", "eager",
    "fast", "fierce", "gentle", "glad", "golden", "happy", "hardy", "keen", "kind", "lively",
    "lucid", "merry", "mighty", "misty", "nimble", "noble", "patient", "placid", "proud", "quick",
    "quiet", "rapid", "ready", "serene", "sharp", "shiny", "silent", "sleek", "smooth", "snappy",
    "steady", "sunny", "swift", "tidal", "tranquil", "vivid", "wise", "witty", "zesty",
)  # fmt: skip
_CREATURES = (
    "anchovy", "barracuda", "bass", "bream", "carp", "catfish", "cod", "dace", "eel", "flounder",
    "goby", "grouper", "guppy", "haddock", "hake", "halibut", "herring", "koi", "mackerel",
    "marlin", "minnow", "mullet", "perch", "pike", "plaice", "pollock", "puffer", "ray", "roach",
    "salmon", "sardine", "shad", "smelt", "snapper", "sole", "sprat", "sturgeon", "tench",
    "tetra", "trout", "tuna", "turbot", "wahoo", "whiting", "wrasse", "zander",
)  # fmt: skip


def check_name(name: str) -> str:
    """A valid container name without its leading slash; ``InvalidArgument`` otherwise."""
    if not NAME_PATTERN.match(name):
        raise InvalidArgument(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    return name.lstrip("/")


def generate_name(taken: set[str], rng: random.Random | None = None) -> str:
    """A fresh "adjective_creature" name; a number is appended once the plain ones run short."""
    rng = rng or random.Random()
    for attempt in range(64):
        name = f"{rng.choice(_ADJECTIVES)}_{rng.choice(_CREATURES)}"
        if attempt >= 8:
            name += str(rng.randint(0, 9999))
        if name not in taken:
            return name
    raise RuntimeError("could not generate a free container name")
