"""Downloading the model: only when asked, resumable through huggingface-hub, LFS pointers caught."""

import shutil

import huggingface_hub
import pytest

from stepaudio_core.download import REPOS, download_models, lfs_pointers
from stepaudio_core.errors import ModelFileError

POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"


def test_finds_lfs_pointers(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "flow.pt").write_bytes(POINTER)
    (tmp_path / "config.json").write_text("{}")
    assert lfs_pointers(tmp_path) == [tmp_path / "a" / "flow.pt"]


def test_download_fetches_both_repositories(tmp_path, monkeypatch, tiny_bundle):
    calls = []

    def fake_snapshot(repo_id, local_dir, **kwargs):
        calls.append((repo_id, local_dir))
        folder = next(name for name, repo in REPOS.items() if repo == repo_id)
        shutil.copytree(tiny_bundle / folder, local_dir, dirs_exist_ok=True)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    messages = []
    assert download_models(tmp_path, progress=messages.append) == tmp_path
    assert calls == [(repo, str(tmp_path / folder)) for folder, repo in REPOS.items()]
    assert len(messages) == 2 and (tmp_path / "Step-Audio-EditX" / "config.json").is_file()


def test_download_reports_pointer_files_and_failures(tmp_path, monkeypatch):
    def pointer_snapshot(repo_id, local_dir, **kwargs):
        shutil.os.makedirs(local_dir, exist_ok=True)
        (tmp_path / "Step-Audio-EditX" / "model.safetensors").write_bytes(POINTER)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", pointer_snapshot)
    with pytest.raises(ModelFileError, match="Git LFS pointers"):
        download_models(tmp_path)

    def offline(repo_id, local_dir, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelFileError, match="failed .*network is unreachable.*resumes"):
        download_models(tmp_path)


def test_loader_downloads_only_when_asked(pack, monkeypatch, tiny_bundle):
    import folder_paths

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kw: calls.append(kw))
    loader = pack.nodes.loader.StepAudioModelLoader
    loader.execute(str(tiny_bundle), "cpu", "fp32", "none", False)
    assert calls == []

    pack.nodes.loader.register_model_folder()  # what the entry point does at start-up
    target = folder_paths.get_folder_paths("step_audio_editx")[0]

    def fake_snapshot(repo_id, local_dir, **kwargs):
        calls.append(repo_id)
        folder = next(name for name, repo in REPOS.items() if repo == repo_id)
        shutil.copytree(tiny_bundle / folder, local_dir, dirs_exist_ok=True)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    model = loader.execute(pack.nodes.loader.NOT_FOUND, "cpu", "fp32", "none", True)[0]
    assert calls == list(REPOS.values())
    assert str(model.components.bundle.root) == target


def test_quantization_needs_cuda(pack, tiny_bundle):
    with pytest.raises(pack.nodes.errors.StepAudioNodeError, match="StepAudio Model Loader: nf4 quantization runs on CUDA"):
        pack.nodes.loader.StepAudioModelLoader.execute(str(tiny_bundle), "cpu", "auto", "nf4", False)
