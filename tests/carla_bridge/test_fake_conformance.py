"""The fake CARLA server exposes only what the real client classes have, with the same parameters.

The real API is read from the type stubs shipped in the carla wheel (``carla/libcarla.pyi``,
``carla/command.pyi``) with ``ast``; every public method or attribute of a fake class must exist on the
mapped real class (or its stub bases), and methods must take the same parameters (names, kinds, and
whether they have a default).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import carla
import pytest

from carla_bridge.fake import actors, client, commands, process

STUBS = Path(carla.__file__).parent
FAKE_TO_REAL = {
    client.FakeClient: ("libcarla", "Client"),
    process.ProcessFakeClient: ("libcarla", "Client"),
    client.FakeWorld: ("libcarla", "World"),
    client.FakeTrafficManager: ("libcarla", "TrafficManager"),
    actors.FakeActor: ("libcarla", "Actor"),
    actors.FakeVehicle: ("libcarla", "Vehicle"),
    actors.FakeSensor: ("libcarla", "Sensor"),
    actors.FakeActorList: ("libcarla", "ActorList"),
    actors.FakeBlueprintLibrary: ("libcarla", "BlueprintLibrary"),
    actors.FakeActorBlueprint: ("libcarla", "ActorBlueprint"),
    actors.FakeActorAttribute: ("libcarla", "ActorAttribute"),
    actors.FakeImage: ("libcarla", "Image"),
    actors.FakeCollisionEvent: ("libcarla", "CollisionEvent"),
    actors.FakeLaneInvasionEvent: ("libcarla", "LaneInvasionEvent"),
    actors.FakeIMUMeasurement: ("libcarla", "IMUMeasurement"),
    actors.FakeGnssMeasurement: ("libcarla", "GnssMeasurement"),
    actors.FakeWorldSnapshot: ("libcarla", "WorldSnapshot"),
    actors.FakeActorSnapshot: ("libcarla", "ActorSnapshot"),
    commands.FakeSpawnActor: ("command", "SpawnActor"),
    commands.FakeResponse: ("command", "Response"),
}


def _stub_classes(module: str) -> dict[str, ast.ClassDef]:
    tree = ast.parse((STUBS / f"{module}.pyi").read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


STUB_CLASSES = {module: _stub_classes(module) for module in ("libcarla", "command")}


def _real_members(module: str, name: str) -> dict[str, list[ast.arguments | None]]:
    """Member name -> parameter lists (one per overload; None for attributes/properties), bases included."""
    node = STUB_CLASSES[module].get(name) or STUB_CLASSES["libcarla"][name]
    members: dict[str, list[ast.arguments | None]] = {}
    for base in node.bases:
        base_name = ast.unparse(base).split("[")[0]
        for other in ("libcarla", "command"):
            if base_name in STUB_CLASSES[other]:
                for key, value in _real_members(other, base_name).items():
                    members.setdefault(key, value)
    own: dict[str, list[ast.arguments | None]] = {}
    for item in node.body:
        if isinstance(item, ast.FunctionDef):
            decorators = {ast.unparse(d) for d in item.decorator_list}
            is_attribute = bool(decorators & {"property"}) or any(d.endswith(".setter") for d in decorators)
            own.setdefault(item.name, []).append(None if is_attribute else item.args)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            own.setdefault(item.target.id, []).append(None)
    members.update(own)
    return members


def _stub_signature(args: ast.arguments) -> list[tuple[str, str, bool]]:
    """(name, kind, has default) per parameter, without self."""
    positional = args.posonlyargs + args.args
    defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
    result = [
        (a.arg, "posonly" if a in args.posonlyargs else "positional", d)
        for a, d in zip(positional, defaults, strict=True)
    ]
    result += [
        (a.arg, "keyword", d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    if args.vararg:
        result.append((args.vararg.arg, "varargs", False))
    if args.kwarg:
        result.append((args.kwarg.arg, "varkw", False))
    return [item for item in result if item[0] != "self"]


def _fake_signature(function: object) -> list[tuple[str, str, bool]]:
    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: "posonly",
        inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
        inspect.Parameter.KEYWORD_ONLY: "keyword",
        inspect.Parameter.VAR_POSITIONAL: "varargs",
        inspect.Parameter.VAR_KEYWORD: "varkw",
    }
    parameters = list(inspect.signature(function).parameters.values())[1:]  # without self
    return [(p.name, kinds[p.kind], p.default is not inspect.Parameter.empty) for p in parameters]


def _matches(fake: list[tuple[str, str, bool]], overloads: list[list[tuple[str, str, bool]]]) -> bool:
    """Same parameters as one overload, or (overloaded) the longest one's, defaulted beyond the shortest."""
    if fake in overloads:
        return True
    if len(overloads) < 2:
        return False
    names = [(name, kind) for name, kind, _ in fake]
    if any([(name, kind) for name, kind, _ in overload] != names[: len(overload)] for overload in overloads):
        return False  # every overload must be a prefix of the fake's parameters
    return len(names) == max(map(len, overloads)) and all(
        default for *_, default in fake[min(map(len, overloads)) :]
    )


def _fake_instance_attributes(fake: type) -> set[str]:
    """Public attributes assigned as ``self.<name> = ...`` in the fake's (and its bases') methods."""
    names: set[str] = set()
    for klass in fake.__mro__:
        if klass is object or not klass.__module__.startswith("carla_bridge"):
            continue
        tree = ast.parse(inspect.getsource(klass))
        for node in ast.walk(tree):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if (
                        isinstance(element, ast.Attribute)
                        and isinstance(element.value, ast.Name)
                        and element.value.id == "self"
                    ):
                        names.add(element.attr)
    return {name for name in names if not name.startswith("_")}


@pytest.mark.parametrize("fake", list(FAKE_TO_REAL), ids=lambda fake: fake.__name__)
def test_fake_members_exist_on_the_real_class_with_the_same_parameters(fake: type) -> None:
    module, real_name = FAKE_TO_REAL[fake]
    real = _real_members(module, real_name)
    problems = []
    for name in _fake_instance_attributes(fake):
        if name not in real:
            problems.append(f"attribute {name!r} does not exist on carla.{real_name}")
    for name, member in inspect.getmembers(fake):
        if name.startswith("_") and name != "__init__":
            continue
        if name == "__init__" and (member is object.__init__ or "__init__" not in real):
            continue
        if name not in real:
            problems.append(f"{name!r} does not exist on carla.{real_name}")
            continue
        signatures = [args for args in real[name] if args is not None]
        if not callable(member) or isinstance(member, property):
            continue
        if not signatures:
            problems.append(f"{name!r} is a method of the fake but an attribute of carla.{real_name}")
        elif not _matches(_fake_signature(member), [_stub_signature(args) for args in signatures]):
            expected = " | ".join(str(_stub_signature(args)) for args in signatures)
            problems.append(
                f"{name}{_fake_signature(member)} differs from carla.{real_name}.{name}{expected}"
            )
    assert not problems, f"{fake.__name__} vs carla.{real_name}:\n" + "\n".join(problems)


def test_the_checker_catches_an_extra_method_and_a_changed_signature() -> None:
    class Broken(client.FakeWorld):
        def teleport(self) -> None: ...

        def tick(self, timeout: float = 10.0) -> int:  # the real parameter is 'seconds'
            return 0

    FAKE_TO_REAL[Broken] = ("libcarla", "World")
    try:
        with pytest.raises(AssertionError, match="teleport") as raised:
            test_fake_members_exist_on_the_real_class_with_the_same_parameters(Broken)
        assert "tick" in str(raised.value)
    finally:
        del FAKE_TO_REAL[Broken]


def test_real_value_types_and_commands_are_used() -> None:
    """The fake builds on the wheel's value types; only SpawnActor and Response are stand-ins."""
    assert commands.DestroyActor is carla.command.DestroyActor
    assert commands.SetAutopilot is carla.command.SetAutopilot
    assert commands.FutureActor == carla.command.FutureActor
    command = commands.SetAutopilot(commands.FutureActor, True, 8123)
    assert (command.actor_id, command.enabled, command.tm_port) == (0, True, 8123)
    with pytest.raises(RuntimeError, match="cannot be instantiated"):
        carla.ActorBlueprint()  # why the fake needs its own blueprints, and hence its own SpawnActor
