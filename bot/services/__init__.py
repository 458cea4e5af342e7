"""Business rules: one transaction per call, plain data out, AppError for the user."""
