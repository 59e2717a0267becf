"""DoubleIt: a TorchScript module that doubles numbers, the smallest end-to-end check of the serving path."""
