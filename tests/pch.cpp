// Carries the precompiled <torch/torch.h> + <gtest/gtest.h> that every libtorch test reuses.
