"""Model definitions owned by the project (torchvision does not import beside every torch
build we run on). Each keeps the reference implementation's module names, so state dicts load
in both directions."""
