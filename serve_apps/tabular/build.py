"""Train the breast-cancer classifier (XGBoost, sklearn API) and hand it over as a data scientist would: joblib."""

from pathlib import Path

SEED = 0


def build(target: Path) -> None:
    """Write a joblib of the fitted `XGBClassifier` to `target`."""
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from xgboost import XGBClassifier

    features, labels = load_breast_cancer(return_X_y=True)
    train_features, _, train_labels, _ = train_test_split(
        features, labels, test_size=0.2, random_state=SEED, stratify=labels
    )
    # One thread and a fixed seed give the same trees, hence the same bytes, on every build.
    classifier = XGBClassifier(n_estimators=100, max_depth=4, learning_rate=0.1, random_state=SEED, n_jobs=1)
    classifier.fit(train_features, train_labels)
    joblib.dump(classifier, target, compress=3)
