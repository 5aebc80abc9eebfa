"""The experts (audio, visual) as plug-ins of one protocol runner (:mod:`mer_utils.experts.runner`)."""
