"""Blocks whose layers are named unlike torchvision's, stating their structure through branch/shortcut/merge."""
