"""Test plugin for resnet-lightning that collides with rl-test-plugin."""
