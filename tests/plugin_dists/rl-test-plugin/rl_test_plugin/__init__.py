"""Test plugin for resnet-lightning. Imports nothing, so listing it imports nothing heavy."""
