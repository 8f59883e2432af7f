"""温州科技创新规划问答: retrieval-augmented, cited answers over policy documents."""
