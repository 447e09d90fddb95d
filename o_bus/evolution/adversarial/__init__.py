"""Red/blue: generated requests that look for failures, and the regression set they leave."""
