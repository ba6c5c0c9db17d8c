"""The datatrove step runs in a real local pipeline."""
import gzip
import json

import pytest

pytest.importorskip("datatrove")


def test_pipeline_step_in_local_executor(tiny_model_dir, tmp_path):
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from pagesieve.datatrove_step import PagesieveLabeler

    inp = tmp_path / "in"
    inp.mkdir()
    with open(inp / "a.jsonl", "w") as fh:
        for i in range(5):
            fh.write(json.dumps({"id": str(i), "text": f"Home\nStory {i}.\n\nShare"}) + "\n")
    LocalPipelineExecutor(pipeline=[JsonlReader(str(inp)),
                                    PagesieveLabeler(model=str(tiny_model_dir), device="cpu", keep=("content", "caption", "navigation", "ui_chrome")),
                                    JsonlWriter(str(tmp_path / "out"))],
                          tasks=1, logging_dir=str(tmp_path / "logs")).run()
    rows = [json.loads(l) for f in (tmp_path / "out").glob("*.jsonl.gz") for l in gzip.open(f, "rt")]
    assert len(rows) == 5
    assert rows[0]["text"] == "Home\nStory 0.\nShare"
    assert len(rows[0]["metadata"]["pagesieve_labels"]) == 4 and rows[0]["metadata"]["pagesieve_labels"][2] is None
