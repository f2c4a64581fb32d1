"""The two-headed ResNet."""
