"""Plugins that misbehave in the ways `resnet-lightning plugins` must survive. Importing the
package itself is harmless; each fault sits in the module its entry point names."""
