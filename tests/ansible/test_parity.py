"""The collection's copies of runtime facts (it cannot import skydive_runtime on managed hosts)
are the runtime's: capturable node types, capture types, extra layers, injection types, in the
module_utils tables, the modules' argument specs and their DOCUMENTATION choices."""

import importlib
import sys

import pytest
import yaml

from skydive_runtime.flow import capabilities, forge


@pytest.fixture(scope="module")
def collection(collections_path):
    sys.path.insert(0, collections_path)
    try:
        yield lambda name: importlib.import_module("ansible_collections.skydive.skydive.plugins." + name)
    finally:
        sys.path.remove(collections_path)


def doc_choices(module, option):
    return yaml.safe_load(module.DOCUMENTATION)["options"][option]["choices"]


def test_module_utils_tables(collection):
    api = collection("module_utils.skydive_api")
    assert api.CAPTURABLE_TYPES == frozenset(capabilities.CAPTURABLE_TYPES)
    assert "tuntap" in api.CAPTURABLE_TYPES          # VM taps: skydive_capture wait=true waits for them
    assert api.CAPTURE_TYPES == tuple(capabilities.CAPTURE_TYPES)
    assert api.EXTRA_LAYERS == capabilities.EXTRA_LAYERS
    assert api.INJECTION_TYPES == forge.TYPES


def test_capture_module(collection):
    mod = collection("modules.skydive_capture")
    spec = mod.CaptureModule.argument_spec
    assert spec["capture_type"]["choices"] == doc_choices(mod, "capture_type") == list(capabilities.CAPTURE_TYPES)
    assert spec["extra_layers"]["choices"] == doc_choices(mod, "extra_layers") == list(capabilities.EXTRA_LAYERS)


def test_injection_module(collection):
    mod = collection("modules.skydive_injection")
    spec = mod.InjectionModule.argument_spec
    assert spec["type"]["choices"] == doc_choices(mod, "type") == list(forge.TYPES)


def test_inventory_sees_vm_taps(collection):
    inv = collection("inventory.skydive")
    assert inv.is_interface({"Metadata": {"Type": "tuntap", "Name": "tap0"}})
    assert not inv.is_interface({"Metadata": {"Type": "ovsport", "Name": "p0"}})
