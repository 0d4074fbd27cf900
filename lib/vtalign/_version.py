"""The library's one version string (``pyproject.toml`` reads it from here)."""
__version__ = "0.1.0"


def git(*args: str) -> str:
    """Output of ``git <args>`` in the checkout this package was loaded from; ``"unknown"`` when
    git or the checkout is missing (an installed wheel, a bare GPU machine)."""
    import subprocess
    from pathlib import Path

    try:
        return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
