"""The studies that ship with the harness, each one instance of the Study API
(:mod:`resnet_harness.study`): the paper's (``paper``) and the long-tail study (``longtail``)."""
