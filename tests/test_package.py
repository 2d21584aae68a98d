"""What `import labkit` promises: the contract names, lazily where they are heavy."""

import subprocess
import sys


def test_star_import_gives_the_facades_and_lazy_modules_load_on_use():
    code = ("import sys\nfrom labkit import *\nimport labkit as lk\n"
            "assert 'labkit.labs' not in sys.modules\n"
            "assert RaftCluster.__name__ == 'RaftCluster'\n"
            "assert FileSystem.__name__ == 'FileSystem'\n"
            "assert callable(lk.labs.grade) and callable(lk.labs.skeleton)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
