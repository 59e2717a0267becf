"""Breast-cancer classifier: an XGBoost model handed over as a joblib file."""
