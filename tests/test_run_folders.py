from memdemo.ui.run_folders import RunFolders


def test_run_folders_stay_bounded_and_are_removed_at_shutdown(tmp_path):
    folders = RunFolders(keep=3, base=tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    made = [folders.new() for _ in range(5)]
    for folder in made:
        if folder.exists():
            (folder / "bundle.zip").write_bytes(b"x")
    assert [folder.exists() for folder in made] == [False, False, True, True, True]
    assert len(list((tmp_path / "runs").iterdir())) == 3
    folders.cleanup()
    assert not (tmp_path / "runs").exists()
