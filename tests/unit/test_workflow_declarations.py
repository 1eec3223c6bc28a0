"""Every declared workflow is sound and used, and every workflow a caller uses is declared."""

import ast
from pathlib import Path

from kailash.workflow import Workflow

import workflows
from nodes.services import service_name
from workflows import API_WORKFLOWS, RUN_WORKFLOWS
from workflows.accounts import SIGN_UP
from workflows.chat import ANSWER_QUESTION
from workflows.check_models import CHECK_MODELS
from workflows.ingestion import INGEST_DOCUMENT, REEMBED_WORKSPACE

ROOT = Path(__file__).resolve().parents[2]
CALLERS = ("resolvers", "app", "runtime")


def _declared_constants() -> dict[str, str]:
    """Constant name -> module, for every `NAME = api_workflow(...)` or `run_workflow(...)`."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "workflows").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id in ("api_workflow", "run_workflow")
            ):
                [target] = node.targets
                assert isinstance(target, ast.Name)
                found[target.id] = path.stem
    return found


def _names_imported_by_callers() -> set[str]:
    names: set[str] = set()
    for package in CALLERS:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workflows"):
                    names.update(alias.name for alias in node.names)
    return names


def test_every_declaration_is_registered_once_and_built():
    constants = _declared_constants()
    assert len(constants) == len(API_WORKFLOWS) + len(RUN_WORKFLOWS) == 78
    for spec in API_WORKFLOWS:
        assert isinstance(spec.workflow, Workflow)
        assert list(spec.workflow.graph.nodes) == ["call"]
        assert spec.name == service_name(spec.service)
    assert len({spec.name for spec in API_WORKFLOWS}) == len(API_WORKFLOWS)


def test_every_api_workflow_is_used_by_a_caller():
    imported = _names_imported_by_callers()
    unused = {name for name, module in _declared_constants().items() if name not in imported}
    # Run workflows are reached by the name stored on each run (RUN_WORKFLOWS), not imported.
    assert unused == {"ANSWER_QUESTION", "CHECK_MODELS", "INGEST_DOCUMENT", "REEMBED_WORKSPACE"}
    assert "RUN_WORKFLOWS" in imported


def test_callers_import_only_declared_workflows():
    declared = set(_declared_constants()) | {"RUN_WORKFLOWS", "API_WORKFLOWS"}
    assert _names_imported_by_callers() <= declared


def test_callers_never_name_a_workflow_by_string():
    for package in CALLERS:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("run", "call")
                    and node.args
                ):
                    first = node.args[0]
                    assert not isinstance(first, ast.Constant), f"{path}:{node.lineno}"


def test_api_workflow_is_one_node_of_the_service_function():
    node = SIGN_UP.workflow.nodes["call"]
    assert SIGN_UP.name == "accounts.sign_up"
    assert node.node_type == "AccountsSignUpNode"


def test_run_workflow_chains_its_steps_in_order():
    assert RUN_WORKFLOWS == {
        "check_models": CHECK_MODELS,
        "ingest_document": INGEST_DOCUMENT,
        "answer_question": ANSWER_QUESTION,
        "reembed_workspace": REEMBED_WORKSPACE,
    }
    assert REEMBED_WORKSPACE.kind.steps == ("EMBEDDING",)
    assert CHECK_MODELS.kind.steps == ("CONNECT", "LIST_MODELS", "CHAT", "EMBED")
    graph = CHECK_MODELS.workflow.graph
    assert list(graph.nodes) == list(CHECK_MODELS.kind.steps)
    assert sorted(graph.edges) == [
        ("CHAT", "EMBED"),
        ("CONNECT", "LIST_MODELS"),
        ("LIST_MODELS", "CHAT"),
    ]
    assert workflows.check_models.CHECK_MODELS is CHECK_MODELS


def test_ingestion_is_one_node_per_stage_in_the_screen_order():
    stages = ("EXTRACTING", "CHUNKING", "INDEXING", "EMBEDDING", "SUMMARIZING", "TAGGING")
    assert INGEST_DOCUMENT.kind.steps == stages
    graph = INGEST_DOCUMENT.workflow.graph
    assert list(graph.nodes) == list(stages)
    assert sorted(graph.edges) == sorted(zip(stages, stages[1:], strict=False))
    assert workflows.ingestion.INGEST_DOCUMENT is INGEST_DOCUMENT


def test_answering_is_one_node_per_stage_in_order():
    stages = ("RETRIEVING", "PROMPTING", "GENERATING", "CHECKING", "STORING")
    assert ANSWER_QUESTION.kind.steps == stages
    graph = ANSWER_QUESTION.workflow.graph
    assert list(graph.nodes) == list(stages)
    assert sorted(graph.edges) == sorted(zip(stages, stages[1:], strict=False))
    assert workflows.chat.ANSWER_QUESTION is ANSWER_QUESTION
