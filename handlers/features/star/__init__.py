"""贡献之星: the monthly vote members hold by replying a candidate's number."""
