"""The usage and budget pages of a tenant, under /t/<tenant>/billing/usage/ and /budgets/."""
