"""The distribution installs as an operator installs it, without a packaging warning of ours."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_an_editable_install_prints_no_packaging_warning_and_ships_the_scripts_and_templates(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    pip = tmp_path / "venv" / "bin" / "pip"
    run = subprocess.run([str(pip), "install", "--no-deps", "-e", str(ROOT)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    # pip's own notes about this machine's index locations are not the package's
    ours = [line for line in (run.stdout + run.stderr).splitlines()
            if re.search(r"warn|!!|absent from the|Editable installation", line, re.I)
            and not line.startswith("WARNING: Location")]
    assert ours == []
    check = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c",
                            "from importlib import resources; "
                            "print(resources.files('facts.scripts').joinpath('whole.sh').is_file(), "
                            "resources.files('operations.scripts').joinpath('nginx_reload.sh').is_file(), "
                            "resources.files('pyinfra_deploys.templates').joinpath('report.md.j2').is_file())"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert check.stdout.split() == ["True", "True", "True"], check.stderr
