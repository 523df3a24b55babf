"""Run python-tripleoclient's `openstack tripleo deploy --output-only --heat-native` (run by the
TripleO venv's python, as root): a real ephemeral Heat creates the stack and config-download is
written to --output-dir. Four host-specific steps are worked around, none of which the output-only
render needs (../shared/reference/tripleo-real.md §4):
- puppet module symlinks and /var/lib/tripleo-heat-installer (this machine has no puppet modules);
- copying /etc/openstack/clouds.yaml into the deployment user's home;
- unmounting heat's tmpfs right after SIGKILL races with heat-all's exit: retried until unmounted.
The empty ansible.cfg in the output directory (else /etc/ansible/ansible.cfg is copied) is
written by the caller.

usage: python tripleo_render.py ARGS...   (the arguments after `openstack tripleo deploy`)
"""
import os
import subprocess
import sys
import time


def _retrying_umount(self):
    deadline = time.time() + 30
    while os.path.ismount(self.install_dir) and time.time() < deadline:
        subprocess.run(["umount", self.install_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if os.path.ismount(self.install_dir):
            time.sleep(0.2)


def main(argv):
    from openstackclient import shell
    from tripleoclient import heat_launcher
    from tripleoclient import utils
    from tripleoclient.v1 import tripleo_deploy

    tripleo_deploy.Deploy._configure_puppet = lambda self: None
    tripleo_deploy.Deploy._create_persistent_dirs = lambda self: None
    utils.copy_clouds_yaml = lambda user: None
    heat_launcher.HeatBaseLauncher.umount_install_dir = _retrying_umount
    return shell.main(["tripleo", "deploy"] + argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
