"""skydive_runtime: a Python reimplementation of the Skydive network topology and flow analyzer."""

__version__ = "0.28.0"
