"""Knowledge distillation: losses, teacher-logit caches, data modes and the distillation objective."""
