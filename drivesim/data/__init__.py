"""Data stage: episode format, recorder, verify/info, torch Dataset + Lightning DataModule, collect runner.

Submodules are imported on demand so that collection workers do not load torch.
"""
