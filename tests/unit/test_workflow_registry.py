"""Every registered workflow builds, has its entry and output nodes, and steps in order."""

from kailash.workflow import Workflow

from workflows import REGISTRY


def test_every_workflow_is_built_once_with_its_nodes():
    assert len(REGISTRY) >= 15
    for name, spec in REGISTRY.items():
        assert spec.name == name
        assert isinstance(spec.workflow, Workflow)
        node_ids = set(spec.workflow.graph.nodes)
        assert {spec.entry_node, spec.output_node} <= node_ids, name
        assert set(spec.steps) <= node_ids, name


def test_api_call_workflows_are_one_service_node():
    spec = REGISTRY["sign_up"]
    assert list(spec.workflow.graph.nodes) == ["call"]
    node = spec.workflow.nodes["call"]
    assert node.node_type == "SignUpNode"
