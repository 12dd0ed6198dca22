"""The knowledge base: passage splitting, index builds and staleness, retrieval, the command."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from bridge.config import ConfigError, read_settings
from bridge.knowledge import (
    KnowledgeBase,
    KnowledgeError,
    build_index,
    default_index_path,
    ensure_index,
    split_passages,
)
from bridge.knowledge.__main__ import main as knowledge_command
from bridge.knowledge.passages import MAX_CHARS, TARGET_CHARS, source_files
from bridge.knowledge.text import index_text, query_terms
from bridge.process.app import create_app
from tests.support.app import log_lines
from tests.support.knowledge import corrupt_the_search_table
from tests.support.upstream import FakeUpstream


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_markdown_headings_become_passage_titles():
    doc = "---\ntitle: x\n---\n# Guide\nIntro line one\nline two.\n\n## Returns\nReturn within 30 days.\n\n" \
          "### Damaged items\nPhoto please.\n\n## Shipping ##\nShips in 2 days.\n"
    passages = list(split_passages("guide.md", doc))
    assert [(p.title, p.text) for p in passages] == [
        ("Guide", "Intro line one\nline two."),
        ("Guide > Returns", "Return within 30 days."),
        ("Guide > Returns > Damaged items", "Photo please."),
        ("Guide > Shipping", "Ships in 2 days."),
    ]
    assert passages[1].label == "guide.md > Guide > Returns"


def test_paragraphs_merge_up_to_the_target_and_long_ones_are_cut_at_sentences():
    short = "\n\n".join(f"Paragraph {i} is short." for i in range(100))
    passages = list(split_passages("notes.txt", short))
    assert all(len(p.text) <= TARGET_CHARS for p in passages) and len(passages) < 100
    assert "\n\n".join(p.text for p in passages) == short
    long = " ".join(f"Sentence number {i} ends here." for i in range(200))
    pieces = [p.text for p in split_passages("long.txt", long)]
    assert all(len(p) <= MAX_CHARS for p in pieces) and len(pieces) > 1
    assert all(p.endswith("here.") for p in pieces)
    chinese = "这是一个很长的句子。" * 300
    assert all(len(p.text) <= MAX_CHARS and p.text.endswith("。") for p in split_passages("zh.txt", chinese))
    assert next(iter(split_passages("hash.txt", "# not a heading in txt"))).text == "# not a heading in txt"


def test_only_visible_md_and_txt_files_are_sources(tmp_path):
    for name in ("a.md", "b.TXT", "c.markdown", "d.json", ".hidden.md", ".git/e.md", "sub/f.md"):
        write(tmp_path, name, "x")
    assert [p.relative_to(tmp_path).as_posix() for p in source_files(tmp_path)] == \
        ["a.md", "b.TXT", "c.markdown", "sub/f.md"]


def test_chinese_is_indexed_as_bigrams_and_questions_lose_their_filler():
    assert index_text("退货政策") == " 退货 货政 政策 退 货 政 策 "
    assert query_terms("退货政策是什么？") == ["退货", "货政", "政策"]
    assert query_terms("猫能吃什么") == ["猫", "吃"]
    assert query_terms("What is the refund policy for orders over $50?") == ["refund", "policy", "orders", "50"]
    assert query_terms("what is it?") == []


def test_index_is_built_when_missing_and_rebuilt_only_when_stale(tmp_path):
    folder, index = tmp_path / "kb", tmp_path / "cache" / "index.sqlite3"
    doc = write(folder, "a.md", "# A\nAlpha passage about zebras.\n")
    first = ensure_index(folder, index)
    assert first.built and first.passages == 1 and index.is_file()
    assert not ensure_index(folder, index).built
    write(folder, "b.txt", "Beta passage about yaks.")
    assert ensure_index(folder, index).passages == 2
    doc.write_text("# A\nAlpha passage about walruses now.\n", encoding="utf-8")
    os.utime(doc, ns=(1, 1))  # a changed file is noticed even with an old timestamp (size differs)
    assert ensure_index(folder, index).built
    (folder / "b.txt").unlink()
    assert ensure_index(folder, index).passages == 1
    index.write_bytes(b"not a database")
    assert ensure_index(folder, index).built


async def test_a_broken_link_in_the_folder_is_a_clear_error(tmp_path, log_stream):
    folder, index = tmp_path / "kb", tmp_path / "index.sqlite3"
    write(folder, "a.md", "Alpha.")
    (folder / "gone.md").symlink_to(folder / "missing.md")
    with pytest.raises(KnowledgeError, match=r"gone\.md"):
        ensure_index(folder, index)
    settings = read_settings({"KNOWLEDGE_DIR": str(folder), "KNOWLEDGE_INDEX": str(index)})
    with pytest.raises(ConfigError, match=r"KNOWLEDGE_DIR: .*gone\.md"):  # start-up stops with a message
        create_app(settings, log_stream=log_stream)


def test_links_to_files_outside_the_folder_are_not_indexed(tmp_path):
    """A link may not bring a file from elsewhere (say /etc, or another user's notes) into prompts."""
    folder, index = tmp_path / "kb", tmp_path / "index.sqlite3"
    write(folder, "a.md", "Alpha lives here.")
    write(tmp_path / "private", "secret.md", "The vault code is 4711.")
    write(folder, "sub/inside.md", "Gamma lives here.")
    (folder / "leak.md").symlink_to(tmp_path / "private" / "secret.md")
    (folder / "alias.md").symlink_to(folder / "sub" / "inside.md")  # a link within the folder is fine
    (folder / "elsewhere").symlink_to(tmp_path / "private", target_is_directory=True)
    assert [p.name for p in source_files(folder)] == ["a.md", "alias.md", "inside.md"]
    assert ensure_index(folder, index).passages == 3
    assert KnowledgeBase(index).search("vault code", 3) == []


@pytest.fixture
def shared_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /tmp: world-writable and sticky, used as the system temp folder."""
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    return shared


def test_a_folder_we_cannot_write_indexes_into_a_private_temp_folder(tmp_path, shared_tmp):
    index = default_index_path(tmp_path / "read-only")  # not writable: it does not even exist
    private = shared_tmp / f"voice-bridge-{os.getuid()}"
    assert index.parent == private
    assert stat.S_IMODE(private.lstat().st_mode) == 0o700 and private.lstat().st_uid == os.getuid()
    folder = tmp_path / "kb"
    write(folder, "a.md", "Alpha.")
    assert ensure_index(folder, index).built
    assert stat.S_IMODE(index.with_name(index.name + ".lock").stat().st_mode) == 0o600
    assert default_index_path(tmp_path / "read-only") == index  # the same folder next time


def test_a_planted_temp_folder_is_refused(tmp_path, shared_tmp):
    private = shared_tmp / f"voice-bridge-{os.getuid()}"
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir(mode=0o700)
    private.symlink_to(elsewhere)
    with pytest.raises(KnowledgeError, match="not a private folder"):
        default_index_path(tmp_path / "read-only")
    private.unlink()
    private.mkdir(mode=0o777)
    private.chmod(0o777)
    with pytest.raises(KnowledgeError, match="KNOWLEDGE_INDEX"):
        default_index_path(tmp_path / "read-only")
    if os.getuid() == 0:  # only root can give a folder away
        private.chmod(0o700)
        os.chown(private, 12345, 12345)
        with pytest.raises(KnowledgeError, match="someone else's"):
            default_index_path(tmp_path / "read-only")


def test_a_planted_lock_link_is_not_followed(tmp_path):
    folder, index = tmp_path / "kb", tmp_path / "shared" / "index.sqlite3"
    write(folder, "a.md", "Alpha.")
    target = write(tmp_path, "precious.txt", "keep me")
    index.parent.mkdir()
    index.with_name(index.name + ".lock").symlink_to(target)
    with pytest.raises(KnowledgeError, match="cannot build"):
        ensure_index(folder, index)
    assert target.read_text() == "keep me" and not index.exists()


def test_a_running_knowledge_base_sees_a_rebuilt_index(tmp_path):
    folder, index = tmp_path / "kb", tmp_path / "index.sqlite3"
    write(folder, "a.md", "Penguins live in Antarctica.")
    build_index(folder, index)
    kb = KnowledgeBase(index)
    assert kb.search("walruses", 3) == []
    write(folder, "b.md", "Walruses live in the Arctic.")
    build_index(folder, index)
    assert [h.passage.text for h in kb.search("walruses", 3)] == ["Walruses live in the Arctic."]


def test_words_in_most_passages_do_not_count_as_a_match(tmp_path):
    folder, index = tmp_path / "kb", tmp_path / "index.sqlite3"
    for i in range(30):
        write(folder, f"p{i}.txt", f"The widget model {i} is blue.")
    write(folder, "warranty.txt", "Every widget has a two year warranty.")
    build_index(folder, index)
    kb = KnowledgeBase(index)
    assert kb.search("widget", 3) == []
    hits = kb.search("widget warranty", 3)
    assert [h.passage.source for h in hits] == ["warranty.txt"]


def test_a_tiny_knowledge_base_still_answers(tmp_path):
    folder, index = tmp_path / "kb", tmp_path / "index.sqlite3"
    write(folder, "only.md", "Our office is in Hangzhou. 我们的办公室在杭州。")
    build_index(folder, index)
    kb = KnowledgeBase(index)
    assert len(kb.search("Where is the office?", 3)) == 1
    assert len(kb.search("办公室在哪里", 3)) == 1


def test_a_damaged_index_is_a_knowledge_error(tmp_path):
    folder, index = tmp_path / "kb", tmp_path / "index.sqlite3"
    write(folder, "a.md", "Walruses live in the Arctic.")
    build_index(folder, index)
    kb = KnowledgeBase(index)
    assert len(kb.search("walruses", 3)) == 1
    corrupt_the_search_table(index)
    with pytest.raises(KnowledgeError, match="cannot be searched"):
        kb.search("walruses", 3)


def test_command_builds_and_searches(tmp_path, capsys):
    folder, index = tmp_path / "kb", tmp_path / "i.sqlite3"
    write(folder, "faq.md", "## Hours\nWe open at nine.\n")
    assert knowledge_command(["build", "--dir", str(folder), "--index", str(index)]) == 0
    assert "indexed 1 passages" in capsys.readouterr().out
    assert knowledge_command(["search", "when do you open", "--dir", str(folder), "--index", str(index)]) == 0
    assert "faq.md > Hours\nWe open at nine." in capsys.readouterr().out
    assert knowledge_command(["build", "--dir", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err


async def test_server_builds_a_stale_index_at_start(bridge, fake_upstream: FakeUpstream, tmp_path, log_stream):
    folder, index = tmp_path / "kb", tmp_path / "custom" / "index.sqlite3"
    env = {"OPENAI_BASE_URL": fake_upstream.url + "/v1", "KNOWLEDGE_DIR": str(folder), "KNOWLEDGE_INDEX": str(index)}
    write(folder, "a.md", "Penguins live in Antarctica.")
    await bridge(env)
    assert index.is_file()
    write(folder, "b.md", "Walruses live in the Arctic.")
    client = await bridge(env)  # a restart after the folder changed
    response = await client.post("/rag/chat/completions", json={
        "stream": True, "messages": [{"role": "user", "content": "Where do walruses live?"}]})
    assert response.status == 200
    await response.read()
    assert "Walruses live in the Arctic." in fake_upstream.last.json()["messages"][0]["content"]
    ready = [line for line in log_lines(log_stream) if line["event"] == "knowledge_ready"]
    assert len(ready) == 2 and ready[-1]["built"] is True and ready[-1]["passages"] == 2


@pytest.mark.parametrize("env, variable", [
    ({"KNOWLEDGE_DIR": "/no/such/folder"}, "KNOWLEDGE_DIR"),
    ({"KNOWLEDGE_INDEX": "/tmp/x.sqlite3"}, "KNOWLEDGE_INDEX"),
    ({"RAG_TOP_K": "0"}, "RAG_TOP_K"),
    ({"RAG_MAX_CONTEXT_CHARS": "lots"}, "RAG_MAX_CONTEXT_CHARS"),
    ({"AUDIO_PCM_FILE": __file__}, "AUDIO_TRANSCRIPT_FILE"),
    ({"AUDIO_PCM_FILE": "/no/such.pcm", "AUDIO_TRANSCRIPT_FILE": __file__}, "AUDIO_PCM_FILE"),
])
def test_bad_settings_name_the_variable(env, variable):
    """Values are checked when read; the files they name, at start-up (reading config never touches the disk)."""
    from bridge.config import ConfigError, check_files

    with pytest.raises(ConfigError, match=variable):
        check_files(read_settings(env))


def test_odd_sized_pcm_is_refused(tmp_path):
    from bridge.config import ConfigError, check_files

    write(tmp_path, "t.txt", "hi")
    (tmp_path / "a.pcm").write_bytes(b"\0" * 1281)
    settings = read_settings({"AUDIO_TRANSCRIPT_FILE": str(tmp_path / "t.txt"),
                                  "AUDIO_PCM_FILE": str(tmp_path / "a.pcm")})
    with pytest.raises(ConfigError, match="odd size"):
        check_files(settings)
    settings = read_settings({"RAG_WAITING_PHRASES": " Hold on. | 稍等 |"})
    assert settings.rag.waiting_phrases == ("Hold on.", "稍等")
