import warnings

# oslo.messaging imports oslo.service, which imports eventlet at module load.
# Nothing here uses or monkey-patches eventlet (threading only); keep its
# deprecation banner off operators' terminals.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
